package confsync_test

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/confsync"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
)

func TestDeliverAndStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, nil)
		want := doc(1, 100_000)
		l.publish("ruleset", 1, want)
		l.publish("dhcp", 5, nil) // empty documents travel too
		settle(3 * time.Second)
		if diff := cmp.Diff([]string{"dhcp@5", "ruleset@1"}, sorted(l.host.log())); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
		if !bytes.Equal(l.host.data["ruleset"], want) {
			t.Error("ruleset applied with other bytes than published")
		}
		s := status(t, l.sub, "ruleset")
		if s.Role != confsync.Subscriber || s.Version != 1 || s.Offered != 1 || s.Err != "" || s.Publisher != primary {
			t.Errorf("subscriber status %+v", s)
		}
		p := status(t, l.pub, "ruleset")
		if p.Role != confsync.Publisher || p.Version != 1 || len(p.Peers) != 1 || p.Peers[0].Node != secondary || p.Peers[0].Applied != 1 {
			t.Errorf("publisher status %+v", p)
		}
		if got := l.dem.log(); len(got) > 0 && got[len(got)-1] != 0 {
			t.Errorf("demotion left raised: %v", got)
		}
	})
}

func sorted(s []string) []string { slices.Sort(s); return s }

func TestLossDuplicationReorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, &pfsynctest.Config{Seed: 7, Faults: pfsynctest.Faults{
			Loss: 0.3, Duplicate: 0.1, Reorder: 0.2, Delay: time.Millisecond, Jitter: time.Millisecond}})
		want := doc(3, 300_000)
		l.publish("ruleset", 3, want)
		settle(30 * time.Second)
		if diff := cmp.Diff([]string{"ruleset@3"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
		if !bytes.Equal(l.host.data["ruleset"], want) {
			t.Error("ruleset corrupted in transit")
		}
		if l.sub.Stats().Retransmits == 0 {
			t.Error("no retransmission under 30% loss")
		}
	})
}

func TestTenChangesWhileAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, nil)
		l.publish("ruleset", 1, doc(1, 5000))
		settle(3 * time.Second)
		l.net.Partition([]pfsync.NodeID{primary}, []pfsync.NodeID{secondary})
		for v := uint64(2); v <= 11; v++ {
			l.publish("ruleset", v, doc(v, 5000))
			settle(time.Second)
		}
		if got := status(t, l.sub, "ruleset").Version; got != 1 {
			t.Fatalf("applied version %d across a partition", got)
		}
		l.net.Heal()
		settle(5 * time.Second)
		if diff := cmp.Diff([]string{"ruleset@1", "ruleset@11"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
		if !bytes.Equal(l.host.data["ruleset"], doc(11, 5000)) {
			t.Error("wrong bytes")
		}
	})
}

func TestSubscriberRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, nil)
		l.publish("ruleset", 1, doc(1, 20_000))
		settle(3 * time.Second)
		sent := l.pub.Stats().ChunksSent

		// Same version: nothing is fetched nor applied again.
		l.startSub()
		settle(5 * time.Second)
		if got := l.pub.Stats().ChunksSent; got != sent {
			t.Errorf("publisher sent %d chunks to a subscriber that had the version", got-sent)
		}
		if got := status(t, l.sub, "ruleset").Version; got != 1 {
			t.Errorf("restarted subscriber reports version %d, want 1 from its state file", got)
		}

		// Away while the document changes: back, it asks for the new one.
		if err := l.sub.Close(); err != nil {
			t.Fatal(err)
		}
		l.publish("ruleset", 2, doc(2, 20_000))
		l.publish("ruleset", 3, doc(3, 20_000))
		settle(3 * time.Second)
		l.startSub()
		settle(3 * time.Second)
		if diff := cmp.Diff([]string{"ruleset@1", "ruleset@3"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
	})
}

func TestPublisherRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, nil)
		l.publish("ruleset", 4, doc(4, 50_000))
		settle(3 * time.Second)

		l.startPub()
		l.publish("ruleset", 4, doc(4, 50_000))
		settle(5 * time.Second)
		if got := l.pub.Stats().ChunksSent; got != 0 {
			t.Errorf("restarted publisher sent %d chunks of a version every peer has", got)
		}
		if p := status(t, l.pub, "ruleset"); len(p.Peers) != 1 || p.Peers[0].Applied != 4 {
			t.Errorf("restarted publisher's view of peers %+v", p.Peers)
		}
		l.publish("ruleset", 5, doc(5, 50_000))
		settle(3 * time.Second)
		if diff := cmp.Diff([]string{"ruleset@4", "ruleset@5"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
	})
}

func TestOlderVersionNeverApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, nil)
		l.publish("ruleset", 7, doc(7, 1000))
		settle(3 * time.Second)
		// A publisher restarted with a lower version (a host bug).
		l.startPub()
		l.publish("ruleset", 6, doc(6, 1000))
		settle(3 * time.Second)
		if diff := cmp.Diff([]string{"ruleset@7"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
		if l.sub.Stats().Older == 0 {
			t.Error("older offer not counted")
		}
	})
}

func TestFailedApplyThenNewer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, nil)
		l.publish("ruleset", 1, doc(1, 1000))
		settle(3 * time.Second)
		l.host.mu.Lock()
		l.host.fail[2] = true
		l.host.mu.Unlock()
		l.publish("ruleset", 2, doc(2, 1000))
		settle(3 * time.Second)
		s := status(t, l.sub, "ruleset")
		if s.Version != 1 || s.Failed != 2 || s.Err == "" {
			t.Errorf("after failed apply: %+v", s)
		}
		if p := status(t, l.pub, "ruleset"); len(p.Peers) != 1 || p.Peers[0].Failed != 2 || p.Peers[0].Err == "" {
			t.Errorf("publisher does not see the failure: %+v", p.Peers)
		}
		if got := l.sub.Stats().ApplyErrors; got != 1 {
			t.Errorf("ApplyErrors %d, want 1 (the failed version is not retried)", got)
		}
		if got := l.dem.log(); len(got) == 0 || got[len(got)-1] == 0 {
			t.Errorf("demotion not held while apply failed: %v", got)
		}
		l.publish("ruleset", 3, doc(3, 1000))
		settle(3 * time.Second)
		s = status(t, l.sub, "ruleset")
		if s.Version != 3 || s.Err != "" {
			t.Errorf("after newer version: %+v", s)
		}
		if got := l.dem.log(); got[len(got)-1] != 0 {
			t.Errorf("demotion not cleared: %v", got)
		}
		if diff := cmp.Diff([]string{"ruleset@1", "ruleset@3"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
	})
}

func TestDemotionWhileBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, &pfsynctest.Config{Faults: pfsynctest.Faults{Delay: 50 * time.Millisecond}})
		l.publish("ruleset", 1, doc(1, 200_000))
		// The offer arrives after 50 ms; the transfer takes round trips.
		time.Sleep(60 * time.Millisecond)
		synctest.Wait()
		if got := l.dem.log(); !slices.Equal(got, []int{confsync.DefaultDemoteBy}) {
			t.Errorf("demotion while receiving: %v, want [%d]", got, confsync.DefaultDemoteBy)
		}
		settle(5 * time.Second)
		if got := l.dem.log(); !slices.Equal(got, []int{confsync.DefaultDemoteBy, 0}) {
			t.Errorf("demotion after applying: %v, want [%d 0]", got, confsync.DefaultDemoteBy)
		}
	})
}

// recorder keeps a copy of every frame a transport sends.
type recorder struct {
	pfsync.Transport
	mu     sync.Mutex
	frames [][]byte
}

func (r *recorder) Send(to pfsync.NodeID, frame []byte) error {
	r.mu.Lock()
	r.frames = append(r.frames, bytes.Clone(frame))
	r.mu.Unlock()
	return r.Transport.Send(to, frame)
}

func (r *recorder) sent() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames)
}

func TestTamperAndReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec *recorder
		nw, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		l := &lab{t: t, net: nw, dir: t.TempDir(), boot: 1000, host: newHost(), dem: &demoter{}}
		l.wrap = func(tr pfsync.Transport) pfsync.Transport {
			if rec == nil {
				rec = &recorder{Transport: tr}
				return rec
			}
			return tr
		}
		l.startPub() // recorded
		l.startSub()
		defer func() {
			for _, n := range []*confsync.Node{l.sub, l.pub} {
				if n != nil {
					if err := n.Close(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
		l.publish("ruleset", 1, doc(1, 1000))
		settle(3 * time.Second)
		l.publish("ruleset", 2, doc(2, 3000))
		settle(3 * time.Second)
		frames := rec.sent()

		evil := nw.Attach(attacker)
		// Tampered: every recorded frame with one bit of its body flipped
		// and a sequence number the subscriber has not seen (else the
		// replay window refuses it before the tag is checked).
		before := l.sub.Stats()
		for i, f := range frames {
			g := bytes.Clone(f)
			g[21], g[22] = 0x7f, byte(i)
			g[len(g)-20] ^= 1
			if err := evil.Send(secondary, g); err != nil {
				t.Fatal(err)
			}
		}
		settle(time.Second)
		after := l.sub.Stats()
		if got := after.Tampered - before.Tampered; got != uint64(len(frames)) {
			t.Errorf("Tampered grew by %d, want %d", got, len(frames))
		}

		// Replayed to the running subscriber: refused by the seal.
		for _, f := range frames {
			if err := evil.Send(secondary, f); err != nil {
				t.Fatal(err)
			}
		}
		settle(time.Second)
		if got := l.sub.Stats().Replayed - after.Replayed; got != uint64(len(frames)) {
			t.Errorf("Replayed grew by %d, want %d", got, len(frames))
		}

		// Replayed to a subscriber that restarted from version 1 with the
		// publisher gone: its fresh sealer accepts the old run, but the
		// data answers another run's requests and is never applied.
		if err := l.pub.Close(); err != nil {
			t.Fatal(err)
		}
		l.pub = nil
		if err := saveStateForTest(l, 1); err != nil {
			t.Fatal(err)
		}
		l.startSub()
		for _, f := range frames {
			if err := evil.Send(secondary, f); err != nil {
				t.Fatal(err)
			}
		}
		settle(3 * time.Second)
		if diff := cmp.Diff([]string{"ruleset@1", "ruleset@2"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
		if got := status(t, l.sub, "ruleset").Version; got != 1 {
			t.Errorf("replayed recording applied: version %d in force", got)
		}
		if l.sub.Stats().Replayed == 0 {
			t.Error("replayed data not counted")
		}
	})
}

func TestConfigErrors(t *testing.T) {
	nw, err := pfsynctest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := nw.Attach(1)
	defer tr.Close()
	s := newSealer(t, 1, 5)
	apply := func(string, uint64, []byte) error { return nil }
	for _, tc := range []struct {
		name string
		cfg  confsync.Config
		want string
	}{
		{"node", confsync.Config{Transport: tr, Sealer: s}, "confsync: Config.Node 0 out of range 1-4294967295"},
		{"both", confsync.Config{Node: 1, Transport: tr, Sealer: s, Publish: []string{"a"}, Subscribe: map[string]pfsync.NodeID{"a": 2}, Apply: apply},
			`confsync: Config.Subscribe "a" is also in Config.Publish: a subscriber never publishes what it subscribes to`},
		{"apply", confsync.Config{Node: 1, Transport: tr, Sealer: s, Subscribe: map[string]pfsync.NodeID{"a": 2}},
			"confsync: Config.Apply nil with 1 subscribed documents"},
		{"self", confsync.Config{Node: 1, Transport: tr, Sealer: s, Subscribe: map[string]pfsync.NodeID{"a": 1}, Apply: apply},
			`confsync: Config.Subscribe["a"] node 1 out of range 1-4294967295, not this node`},
		{"interval", confsync.Config{Node: 1, Transport: tr, Sealer: s, Interval: time.Millisecond},
			"confsync: Config.Interval 1ms out of range (0 or at least 10ms)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := confsync.New(tc.cfg)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}

func TestPublishRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, nil)
		if err := l.sub.Publish("ruleset", 1, nil); err == nil {
			t.Error("subscriber published a document it subscribes to")
		}
		l.publish("ruleset", 2, nil)
		if err := l.pub.Publish("ruleset", 2, nil); err == nil {
			t.Error("same version published twice")
		}
	})
}

// corrupter flips a bit in every fifth frame it receives, as a
// man in the middle would.
type corrupter struct {
	pfsync.Transport
	n int
}

func (c *corrupter) Receive() (pfsync.Datagram, error) {
	d, err := c.Transport.Receive()
	if err == nil {
		c.n++
		if c.n%5 == 0 {
			d.Payload[len(d.Payload)/2] ^= 0x10
		}
	}
	return d, err
}

func TestTamperInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		l := &lab{t: t, net: nw, dir: t.TempDir(), boot: 1000, host: newHost(), dem: &demoter{}}
		l.startPub()
		l.wrap = func(tr pfsync.Transport) pfsync.Transport { return &corrupter{Transport: tr} }
		l.startSub()
		defer func() {
			for _, n := range []*confsync.Node{l.sub, l.pub} {
				if err := n.Close(); err != nil {
					t.Error(err)
				}
			}
		}()
		want := doc(9, 100_000)
		l.publish("ruleset", 9, want)
		settle(10 * time.Second)
		if diff := cmp.Diff([]string{"ruleset@9"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
		if !bytes.Equal(l.host.data["ruleset"], want) {
			t.Error("tampered bytes applied")
		}
		if l.sub.Stats().Tampered == 0 {
			t.Error("tampered frames not counted")
		}
	})
}

// While the host applies one version, newer ones keep arriving; only the
// newest is applied next.
func TestSlowApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		var mu sync.Mutex
		var applied []uint64
		pub, err := confsync.New(confsync.Config{Node: primary, Transport: nw.Attach(primary), Sealer: newSealer(t, primary, 5), Publish: []string{"r"}})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := confsync.New(confsync.Config{Node: secondary, Transport: nw.Attach(secondary), Sealer: newSealer(t, secondary, 5),
			Subscribe: map[string]pfsync.NodeID{"r": primary},
			Apply: func(_ string, v uint64, _ []byte) error {
				if v == 1 {
					<-release
				}
				mu.Lock()
				applied = append(applied, v)
				mu.Unlock()
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		pub.Start()
		sub.Start()
		defer func() {
			for _, n := range []*confsync.Node{sub, pub} {
				if err := n.Close(); err != nil {
					t.Error(err)
				}
			}
		}()
		for v := uint64(1); v <= 3; v++ {
			if err := pub.Publish("r", v, doc(v, 10_000)); err != nil {
				t.Fatal(err)
			}
			settle(2 * time.Second)
		}
		if s := status(t, sub, "r"); s.Offered != 3 || s.Version != 0 {
			t.Errorf("during a slow apply: %+v, want version 0 in force and 3 offered", s)
		}
		close(release)
		settle(2 * time.Second)
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(applied, []uint64{1, 3}) {
			t.Errorf("applied %v, want [1 3]", applied)
		}
	})
}

func TestPartitionDuringTransfer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, &pfsynctest.Config{Faults: pfsynctest.Faults{Delay: 5 * time.Millisecond}})
		// Offer at 5 ms, request at 10, the first window (2 MiB) sent at
		// 15: the partition at 17 lets it arrive and cuts the rest.
		want := doc(1, 5_000_000)
		l.publish("ruleset", 1, want)
		time.Sleep(17 * time.Millisecond)
		l.net.Partition([]pfsync.NodeID{primary}, []pfsync.NodeID{secondary})
		settle(10 * time.Second)
		s := status(t, l.sub, "ruleset")
		if s.Version != 0 || s.Receiving != 1 || s.Received == 0 || s.Received >= uint64(len(want)) {
			t.Fatalf("cut mid-transfer: %+v", s)
		}
		l.net.Heal()
		settle(5 * time.Second)
		if diff := cmp.Diff([]string{"ruleset@1"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
		if !bytes.Equal(l.host.data["ruleset"], want) {
			t.Error("wrong bytes")
		}
	})
}

func TestRestartBothSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, nil)
		l.publish("ruleset", 1, doc(1, 30_000))
		settle(3 * time.Second)
		for _, n := range []*confsync.Node{l.pub, l.sub} {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		}
		l.pub, l.sub = nil, nil
		l.startSub()
		l.startPub()
		l.publish("ruleset", 1, doc(1, 30_000)) // the host's current version again
		settle(3 * time.Second)
		if got := l.pub.Stats().ChunksSent; got != 0 {
			t.Errorf("sent %d chunks of a version the subscriber has", got)
		}
		l.publish("ruleset", 2, doc(2, 30_000))
		settle(3 * time.Second)
		if diff := cmp.Diff([]string{"ruleset@1", "ruleset@2"}, l.host.log()); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
		if p := status(t, l.pub, "ruleset"); len(p.Peers) != 1 || p.Peers[0].Applied != 2 {
			t.Errorf("publisher's view %+v", p.Peers)
		}
	})
}
