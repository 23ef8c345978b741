package conntrack

import (
	"context"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
)

// The backend is the engine's Table and the engine is the backend's Sink.
var (
	_ pfsync.BatchTable = (*Backend)(nil)
	_ Sink              = (*pfsync.Engine)(nil)
)

// eventually polls cond until it holds; the engine offers no event for
// "a frame was applied", so this is condition polling with a deadline, not
// a sleep standing in for synchronisation.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 20 s", what)
		}
		<-tick.C
	}
}

type node struct {
	ns  *netns.NS
	fd  int
	b   *Backend
	eng *pfsync.Engine
}

func newNode(t *testing.T, tp *netns.Topology, net *pfsynctest.Network, id pfsync.NodeID, name string, mode pfsync.CommitMode) *node {
	t.Helper()
	n := &node{}
	n.ns, n.fd = testNS(t, tp, name)
	n.b = newBackend(t, Config{NetNS: n.fd})
	eng, err := pfsync.New(pfsync.Config{
		Node: id, Transport: net.Attach(id), Insecure: true,
		Table: n.b, Commit: mode, FlushDelay: time.Millisecond, Heartbeat: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.eng = eng
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := eng.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := n.b.Start(eng); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEngine replicates a kernel flow from one namespace to another through
// two engines: with CommitDirect it reaches the backup's kernel at once,
// with CommitOnTakeover only in PrepareTakeover. Then the backup takes the
// flow over: its state changes and its end reach the old master's kernel.
func TestEngine(t *testing.T) {
	netns.RequireBinary(t, "conntrack")
	for _, mode := range []pfsync.CommitMode{pfsync.CommitDirect, pfsync.CommitOnTakeover} {
		t.Run(mode.String(), func(t *testing.T) {
			tp := netns.New(t, "gck")
			net, err := pfsynctest.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			a := newNode(t, tp, net, 1, "a", mode)
			b := newNode(t, tp, net, 2, "b", mode)

			ctInsert(a.ns, "10.0.1.2", 1000)
			src := ap("10.0.1.2:1000")
			var id record.ID
			eventually(t, "record at the backup's engine", func() bool {
				for _, r := range b.eng.Records() {
					if r.Key.Orig.Src == src {
						id = r.ID
						return true
					}
				}
				return false
			})
			if id.Creator != 1 {
				t.Errorf("record %v not created by node 1", id)
			}
			inKernel := func() bool { _, ok := findFlow(dumpNS(t, b.fd), src); return ok }
			if mode == pfsync.CommitOnTakeover {
				if inKernel() {
					t.Fatal("external cache mode wrote the flow before the takeover")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				n, err := b.eng.PrepareTakeover(ctx)
				if err != nil || n != 1 {
					t.Fatalf("PrepareTakeover = %d, %v; want 1", n, err)
				}
			} else {
				eventually(t, "flow in the backup's kernel", inKernel)
			}
			f, ok := findFlow(dumpNS(t, b.fd), src)
			if !ok || !f.Status.Assured() || !f.Status.Confirmed() {
				t.Fatalf("backup's kernel: %v (found %v)", f.Status, ok)
			}
			// The backup's watcher saw the injection and did not claim it.
			for _, r := range b.eng.Records() {
				if r.ID.Creator == 2 {
					t.Errorf("backup reported the injected flow as its own: %v", r.ID)
				}
			}

			// B takes over: traffic there closes the flow. B reports it
			// under A's identity; A's engine hands its own record back to
			// A's Table, whose kernel copy follows without A reporting the
			// echo as a change of its own.
			args := conntrackArgs("10.0.1.2", "10.0.2.3", 1000, 80)
			b.ns.Run("conntrack", append(append([]string{"-U"}, args...), "--state", "FIN_WAIT")...)
			eventually(t, "FIN_WAIT in the old master's kernel", func() bool {
				f, ok := findFlow(dumpNS(t, a.fd), src)
				return ok && f.ProtoInfo.TCP != nil && f.ProtoInfo.TCP.State == tcpFinWait
			})
			if s := a.b.Stats(); s.Echoes == 0 || s.InjectUpdates == 0 {
				t.Errorf("old master's backend: %+v, want an update written and its echo absorbed", s)
			}
			// The flow ends on the new master: it is deleted everywhere.
			b.ns.Run("conntrack", append([]string{"-D"}, args...)...)
			eventually(t, "delete in the old master's kernel", func() bool { _, ok := findFlow(dumpNS(t, a.fd), src); return !ok })
			eventually(t, "delete in both engines", func() bool {
				_, okA := a.eng.Get(id)
				_, okB := b.eng.Get(id)
				return !okA && !okB
			})
		})
	}
}
