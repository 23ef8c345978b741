package conntrack

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/gocarp/gocarp/pfsync/record"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// timeouts are the longest lifetimes, in seconds, the kernel gives a flow:
// the timeout a packet of the flow refreshes it to, per protocol and state.
// An injected flow's timeout is capped at them (limit): a peer's record
// cannot make this kernel keep a flow longer than its own traffic would
// have, so a forged or corrupted lifetime (up to 136 years on the wire)
// cannot pin entries in the table.
type timeouts struct {
	tcp       [tcpSynSent2 + 1]uint32 // per conntrack TCP state
	udp       uint32                  // UDP, UDP-Lite: no reply seen
	udpStream uint32                  // UDP, UDP-Lite: replies seen
	icmp      uint32
	icmpv6    uint32
	gre       uint32
	greStream uint32
	sctp      uint32 // the longest SCTP state: records carry no SCTP state
	generic   uint32 // every other protocol
}

// defaultTimeouts are the kernel's defaults (nf_conntrack_proto_*.c,
// Linux 6.x), used for whatever the node's sysctls do not say.
func defaultTimeouts() timeouts {
	const minute, day = 60, 86400
	var t timeouts
	t.tcp[tcpNone] = 2 * minute // no state of its own: a new flow's SYN_SENT
	t.tcp[tcpSynSent] = 2 * minute
	t.tcp[tcpSynRecv] = 60
	t.tcp[tcpEstablished] = 5 * day
	t.tcp[tcpFinWait] = 2 * minute
	t.tcp[tcpCloseWait] = 60
	t.tcp[tcpLastAck] = 30
	t.tcp[tcpTimeWait] = 2 * minute
	t.tcp[tcpClose] = 10
	t.tcp[tcpSynSent2] = 2 * minute
	t.udp, t.udpStream = 30, 120
	t.icmp, t.icmpv6 = 30, 30
	t.gre, t.greStream = 30, 180
	t.sctp = 210
	t.generic = 600
	return t
}

// sysctlDir holds the conntrack sysctls of the reading thread's namespace.
const sysctlDir = "/proc/sys/net/netfilter"

// readTimeouts returns the timeouts of the network namespace netns (zero:
// the caller's), from its nf_conntrack_*_timeout* sysctls, with the kernel
// default for every value it cannot read. The sysctls under /proc/sys/net
// are those of the namespace of the thread that opens them, so for another
// namespace a locked thread switches into it to read them.
func readTimeouts(netns int) (timeouts, error) {
	if netns == 0 {
		return parseTimeouts(os.ReadFile), nil
	}
	type result struct {
		t   timeouts
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is unlocked only once it is back in its own
		// namespace; otherwise it exits with this goroutine.
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("conntrack: timeouts: %w", err)}
			return
		}
		defer self.Close()
		if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("conntrack: timeouts: enter NetNS %d: %w", netns, err)}
			return
		}
		t := parseTimeouts(os.ReadFile)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- result{err: fmt.Errorf("conntrack: timeouts: leave NetNS %d: %w", netns, err)}
			return
		}
		runtime.UnlockOSThread()
		res <- result{t: t}
	}()
	r := <-res
	return r.t, r.err
}

// parseTimeouts reads the timeout sysctls with read (os.ReadFile, or a
// fake in tests); a value that is missing or not a positive number keeps
// its default.
func parseTimeouts(read func(string) ([]byte, error)) timeouts {
	t := defaultTimeouts()
	get := func(name string, v *uint32) {
		b, err := read(filepath.Join(sysctlDir, "nf_conntrack_"+name))
		if err != nil {
			return
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil || n == 0 {
			return
		}
		*v = uint32(n)
	}
	for state, name := range map[uint8]string{
		tcpSynSent: "syn_sent", tcpSynRecv: "syn_recv", tcpEstablished: "established",
		tcpFinWait: "fin_wait", tcpCloseWait: "close_wait", tcpLastAck: "last_ack",
		tcpTimeWait: "time_wait", tcpClose: "close",
	} {
		get("tcp_timeout_"+name, &t.tcp[state])
	}
	// SYN_SENT2 (simultaneous open) and a flow without state have no
	// sysctl of their own; the kernel gives them the SYN_SENT lifetime.
	t.tcp[tcpSynSent2], t.tcp[tcpNone] = t.tcp[tcpSynSent], t.tcp[tcpSynSent]
	get("udp_timeout", &t.udp)
	get("udp_timeout_stream", &t.udpStream)
	get("icmp_timeout", &t.icmp)
	get("icmpv6_timeout", &t.icmpv6)
	get("gre_timeout", &t.gre)
	get("gre_timeout_stream", &t.greStream)
	get("generic_timeout", &t.generic)
	// The longest SCTP state bounds an SCTP flow, whatever its state.
	var sctp uint32
	for _, s := range []string{"closed", "cookie_wait", "cookie_echoed", "established",
		"shutdown_sent", "shutdown_recd", "shutdown_ack_sent", "heartbeat_sent"} {
		v := uint32(0)
		get("sctp_timeout_"+s, &v)
		sctp = max(sctp, v)
	}
	if sctp > 0 {
		t.sctp = sctp
	}
	return t
}

// limit returns the longest timeout the kernel gives f in its state: for
// TCP the state's timeout, for UDP, UDP-Lite and GRE the stream timeout
// once a reply was seen (the unreplied one before), for ICMP its timeout,
// for SCTP the longest of its states, else the generic timeout.
func (t *timeouts) limit(f *ct.Flow) uint32 {
	replied := f.Status&(ct.StatusSeenReply|ct.StatusAssured) != 0
	switch f.TupleOrig.Proto.Protocol {
	case record.ProtoTCP:
		if tcp := f.ProtoInfo.TCP; tcp != nil && int(tcp.State) < len(t.tcp) {
			return t.tcp[tcp.State]
		}
		return t.tcp[tcpNone]
	case record.ProtoUDP, protoUDPLite:
		if replied {
			return t.udpStream
		}
		return t.udp
	case protoGRE:
		if replied {
			return t.greStream
		}
		return t.gre
	case record.ProtoICMP:
		return t.icmp
	case record.ProtoICMPv6:
		return t.icmpv6
	case protoSCTP:
		return t.sctp
	}
	return t.generic
}

// IP protocol numbers the record package has no name for.
const (
	protoGRE     = 47
	protoSCTP    = 132
	protoUDPLite = 136
)
