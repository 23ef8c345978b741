package conntrack

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// checkDecode checks decodeEvent against ct.Event.Unmarshal on m: where
// decodeEvent decodes, Unmarshal must give the same event. It returns
// whether decodeEvent decoded m.
func checkDecode(t *testing.T, m netlink.Message) bool {
	t.Helper()
	var want ct.Event
	werr := want.Unmarshal(m)
	var f ct.Flow
	f.Mark = 12345 // decodeEvent must not keep anything of the flow it is given
	got, ok := decodeEvent(m, &f)
	if !ok {
		return false
	}
	if werr != nil {
		t.Fatalf("decodeEvent decoded %+v, Unmarshal refused: %v", *got.Flow, werr)
	}
	if got.Type != want.Type || got.Flow != &f || !reflect.DeepEqual(*got.Flow, *want.Flow) {
		t.Fatalf("decodeEvent = type %v %+v\nUnmarshal   = type %v %+v", got.Type, *got.Flow, want.Type, *want.Flow)
	}
	return true
}

// nlAttr appends a netlink attribute (native-endian header, padded).
func nlAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// eventSeeds returns event messages as the kernel sends them: the flows of
// the conversion tests as NEW and UPDATE messages, with the attributes
// only events carry (id, use, counters, timestamps, a helper, labels)
// appended to some.
func eventSeeds(t testing.TB) []netlink.Message {
	var out []netlink.Message
	be64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	for i, c := range convCases() {
		for _, create := range []bool{true, false} {
			m, err := buildMessage(&c.flow, create)
			if err != nil {
				t.Fatal(err)
			}
			m.Header.Flags &^= netlink.Request | netlink.Acknowledge
			m.Data = append([]byte(nil), m.Data...)
			out = append(out, m)
			if i%2 == 0 {
				continue
			}
			x := m
			x.Data = append([]byte(nil), m.Data...)
			x.Data = nlAttr(x.Data, ctaID, be32(77))
			x.Data = nlAttr(x.Data, ctaUse, be32(1))
			x.Data = nlAttr(x.Data, ctaCountersOrig|nlaNested, nlAttr(nlAttr(nil, ctaCounterPkts, be64(5)), ctaCounterBytes, be64(900)))
			x.Data = nlAttr(x.Data, ctaCountersReply|nlaNested, nlAttr(nlAttr(nil, ctaCounterPkts, be64(4)), ctaCounterBytes, be64(700)))
			x.Data = nlAttr(x.Data, ctaTimestamp|nlaNested, nlAttr(nil, ctaTSStart, be64(uint64(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC).UnixNano()))))
			x.Data = nlAttr(x.Data, ctaHelp|nlaNested, nlAttr(nil, ctaHelpName, []byte("ftp\x00")))
			x.Data = nlAttr(x.Data, ctaLabels, make([]byte, 16))
			out = append(out, x)
		}
	}
	// A DESTROY event of the first flow.
	m, err := buildMessage(&convCases()[0].flow, false)
	if err != nil {
		t.Fatal(err)
	}
	m.Header.Type = netlink.HeaderType(uint16(netfilter.NFSubsysCTNetlink)<<8 | ctMsgDelete)
	m.Header.Flags = 0
	out = append(out, m)
	return out
}

func TestDecodeEventSeeds(t *testing.T) {
	for i, m := range eventSeeds(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			nat := false // the injector's NAT attributes: requests only, never in events
			eachAttr(m.Data[4:], func(typ uint16, _ bool, _ []byte) bool {
				nat = nat || typ == ctaNATSrc || typ == ctaNATDst
				return true
			})
			if !checkDecode(t, m) && !nat {
				t.Errorf("decodeEvent left an event of the kernel's kind to Unmarshal: %x", m.Data)
			}
		})
	}
}

// FuzzDecodeEvent checks the property decodeEvent promises: whatever it
// decodes, Unmarshal decodes to the same event; it never panics.
func FuzzDecodeEvent(f *testing.F) {
	for _, m := range eventSeeds(f) {
		f.Add(uint16(m.Header.Type), uint16(m.Header.Flags), m.Data)
	}
	f.Fuzz(func(t *testing.T, typ, flags uint16, data []byte) {
		checkDecode(t, netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.HeaderFlags(flags)}, Data: data})
	})
}

// TestDecodeEventKernel reads the kernel's own events of flows created,
// changed and deleted with conntrack(8) — TCP and UDP, IPv4 and IPv6, ICMP,
// a mark, a zone — and checks that decodeEvent decodes every one of them
// as Unmarshal does.
func TestDecodeEventKernel(t *testing.T) {
	netns.RequireBinary(t, "conntrack")
	tp := netns.New(t, "gck")
	n, fd := testNS(t, tp, "a")
	c, err := dialNetfilter(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, g := range netfilter.GroupsCT {
		if err := c.JoinGroup(uint32(g)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := newEventReader(c)
	if err != nil {
		t.Fatal(err)
	}
	cmds := [][]string{
		{"-I", "-p", "tcp", "-s", "10.0.1.2", "-d", "10.0.2.3", "--sport", "4000", "--dport", "80", "--state", "SYN_SENT", "-t", "100"},
		{"-U", "-p", "tcp", "-s", "10.0.1.2", "-d", "10.0.2.3", "--sport", "4000", "--dport", "80", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-m", "7", "-t", "300"},
		{"-I", "-p", "udp", "-s", "2001:db8::1", "-d", "2001:db8::2", "--sport", "5000", "--dport", "53", "-t", "30", "-w", "3"},
		{"-I", "-p", "icmp", "-s", "10.0.1.2", "-d", "10.0.2.3", "--icmp-type", "8", "--icmp-code", "0", "--icmp-id", "99", "-t", "30"},
		{"-D", "-p", "tcp", "-s", "10.0.1.2", "-d", "10.0.2.3", "--sport", "4000", "--dport", "80"},
	}
	for _, cmd := range cmds {
		n.Run("conntrack", cmd...)
	}
	// Five commands, at least one event each; the kernel queued them all
	// before the last command returned.
	seen := 0
	for seen < len(cmds) {
		k, err := r.read()
		if err != nil {
			t.Fatal(err)
		}
		for i := range k {
			if err := r.datagram(i, func(m netlink.Message) {
				seen++
				if !checkDecode(t, m) {
					t.Errorf("decodeEvent left a kernel event to Unmarshal: type %#x flags %#x data %x", m.Header.Type, m.Header.Flags, m.Data)
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkEventDecode measures the decoding of one conntrack event of an
// established TCP flow as the kernel reports it (tuples, status, timeout,
// protocol info, id, mark, SYN proxy): ti-mo/conntrack's Event.Unmarshal,
// and decodeEvent, which the watcher uses instead where it can.
func BenchmarkEventDecode(b *testing.B) {
	var m netlink.Message
	for _, s := range eventSeeds(b) {
		if uint16(s.Header.Type)&0xff == ctMsgNew && s.Header.Flags == 0 {
			m = s // an UPDATE of the first flow
			break
		}
	}
	// The attributes the kernel adds to the event of an established flow.
	m.Data = nlAttr(m.Data, ctaID, []byte{0, 0, 0, 7})
	m.Data = nlAttr(m.Data, ctaSynProxy|nlaNested, nlAttr(nlAttr(nlAttr(nil, ctaSynProxyISN, make([]byte, 4)), ctaSynProxyITS, make([]byte, 4)), ctaSynProxyTSOff, make([]byte, 4)))
	var f ct.Flow
	if _, ok := decodeEvent(m, &f); !ok {
		b.Fatal("decodeEvent refused the event")
	}
	b.Run("Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev ct.Event
			if err := ev.Unmarshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeEvent(m, &f); !ok {
				b.Fatal("refused")
			}
		}
	})
}
