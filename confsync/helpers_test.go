package confsync_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gocarp/gocarp/confsync"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/seal"
)

const (
	primary   pfsync.NodeID = 1
	secondary pfsync.NodeID = 2
	attacker  pfsync.NodeID = 99
)

// testKey is a fixed cluster key, derived for the configuration sync.
func testKey(t testing.TB) []byte {
	t.Helper()
	psk := make([]byte, 32)
	for i := range psk {
		psk[i] = byte(i*37 + 11)
	}
	k, err := confsync.Key(psk)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSealer(t testing.TB, id pfsync.NodeID, boot uint32) *seal.Sealer {
	t.Helper()
	s, err := seal.New(seal.Config{Node: id, Boot: boot, Keys: []seal.Key{{ID: 1, Secret: testKey(t)}}, SendKeyID: 1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// host records what a subscriber applied; fail makes chosen versions fail.
type host struct {
	mu      sync.Mutex
	applied []string // "name@version"
	data    map[string][]byte
	fail    map[uint64]bool
}

func newHost() *host { return &host{data: make(map[string][]byte), fail: make(map[uint64]bool)} }

func (h *host) apply(name string, version uint64, data []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail[version] {
		return errors.New("nft: syntax error")
	}
	h.applied = append(h.applied, fmt.Sprintf("%s@%d", name, version))
	h.data[name] = data
	return nil
}

func (h *host) log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.applied...)
}

// demoter records demotion changes.
type demoter struct {
	mu    sync.Mutex
	calls []int
}

func (d *demoter) SetDemotion(source string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, n)
}

func (d *demoter) log() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.calls...)
}

// lab is a publisher and a subscriber on an in-memory network.
type lab struct {
	t    *testing.T
	net  *pfsynctest.Network
	dir  string
	boot uint32
	host *host
	dem  *demoter
	pub  *confsync.Node
	sub  *confsync.Node
	wrap func(pfsync.Transport) pfsync.Transport
}

func newLab(t *testing.T, cfg *pfsynctest.Config) *lab {
	t.Helper()
	nw, err := pfsynctest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, net: nw, dir: t.TempDir(), boot: 1000, host: newHost(), dem: &demoter{}}
	l.startPub()
	l.startSub()
	t.Cleanup(func() {
		for _, n := range []*confsync.Node{l.pub, l.sub} {
			if n != nil {
				if err := n.Close(); err != nil {
					t.Error(err)
				}
			}
		}
	})
	return l
}

func (l *lab) transport(id pfsync.NodeID) pfsync.Transport {
	var tr pfsync.Transport = l.net.Attach(id)
	if l.wrap != nil {
		tr = l.wrap(tr)
	}
	return tr
}

func (l *lab) startPub() {
	l.t.Helper()
	if l.pub != nil {
		if err := l.pub.Close(); err != nil {
			l.t.Fatal(err)
		}
	}
	l.boot++
	n, err := confsync.New(confsync.Config{
		Node: primary, Transport: l.transport(primary), Sealer: newSealer(l.t, primary, l.boot),
		Publish: []string{"ruleset", "dhcp"},
	})
	if err != nil {
		l.t.Fatal(err)
	}
	n.Start()
	l.pub = n
}

func (l *lab) startSub() {
	l.t.Helper()
	if l.sub != nil {
		if err := l.sub.Close(); err != nil {
			l.t.Fatal(err)
		}
	}
	l.boot++
	n, err := confsync.New(confsync.Config{
		Node: secondary, Transport: l.transport(secondary), Sealer: newSealer(l.t, secondary, l.boot),
		Subscribe: map[string]pfsync.NodeID{"ruleset": primary, "dhcp": primary},
		Apply:     l.host.apply,
		StateFile: filepath.Join(l.dir, "confsync.state"),
		Demoter:   l.dem,
	})
	if err != nil {
		l.t.Fatal(err)
	}
	n.Start()
	l.sub = n
}

func (l *lab) publish(name string, version uint64, data []byte) {
	l.t.Helper()
	if err := l.pub.Publish(name, version, data); err != nil {
		l.t.Fatal(err)
	}
}

// settle lets simulated time run long enough for any transfer to end.
func settle(d time.Duration) {
	time.Sleep(d)
}

func doc(version uint64, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(uint64(i)*7 + version)
	}
	return b
}

func status(t *testing.T, n *confsync.Node, name string) confsync.DocumentStatus {
	t.Helper()
	for _, d := range n.Status() {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no status for %q", name)
	return confsync.DocumentStatus{}
}

// saveStateForTest rewrites the subscriber's state file as if it had
// applied version of the ruleset (and nothing else).
func saveStateForTest(l *lab, version uint64) error {
	return confsync.SaveState(filepath.Join(l.dir, "confsync.state"), map[string]uint64{"ruleset": version})
}
