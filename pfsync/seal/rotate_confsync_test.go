package seal_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/confsync"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/seal"
)

// TestRotateConfsync: the configuration sync, sealed under keys derived
// from the cluster keys (DeriveKeys with confsync.Key), rotates in the
// same three steps as the state sync, the nodes taking each step in a
// different order, while the publisher publishes a version per step:
// every version is applied and no message is refused.
func TestRotateConfsync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(&pfsynctest.Config{Faults: pfsynctest.Faults{Delay: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		psk := func(seed byte) []byte {
			k := make([]byte, seal.KeySize)
			for i := range k {
				k[i] = seed*31 + byte(i)*97 + 0x80
			}
			return k
		}
		oldK, newK := seal.Key{ID: 1, Secret: psk(1)}, seal.Key{ID: 2, Secret: psk(2)}
		derived := func(keys ...seal.Key) []seal.Key {
			t.Helper()
			d, err := seal.DeriveKeys(keys, confsync.Key)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		var mu sync.Mutex
		var applied []string
		var sealers [2]*seal.Sealer
		var nodes [2]*confsync.Node
		for i := range 2 {
			id := pfsync.NodeID(i + 1)
			s, err := seal.New(seal.Config{Node: id, Boot: 1, Keys: derived(oldK), SendKeyID: 1})
			if err != nil {
				t.Fatal(err)
			}
			cfg := confsync.Config{Node: id, Transport: network.Attach(id), Sealer: s, Interval: time.Second}
			if i == 0 {
				cfg.Publish = []string{"ruleset"}
			} else {
				cfg.Subscribe = map[string]pfsync.NodeID{"ruleset": 1}
				cfg.Apply = func(name string, version uint64, data []byte) error {
					mu.Lock()
					applied = append(applied, fmt.Sprintf("%s@%d", name, version))
					mu.Unlock()
					return nil
				}
			}
			n, err := confsync.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			n.Start()
			t.Cleanup(func() { n.Close() })
			sealers[i], nodes[i] = s, n
		}
		version := uint64(0)
		publish := func() {
			t.Helper()
			version++
			if err := nodes[0].Publish("ruleset", version, bytes.Repeat([]byte{byte(version)}, 5000)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			synctest.Wait()
		}
		rotate := func(node int, send uint8, keys ...seal.Key) {
			t.Helper()
			if err := sealers[node-1].Rotate(derived(keys...), send); err != nil {
				t.Fatal(err)
			}
			publish()
		}
		publish()
		rotate(1, 1, oldK, newK) // step 1
		rotate(2, 1, oldK, newK)
		rotate(2, 2, oldK, newK) // step 2, the subscriber first
		rotate(1, 2, oldK, newK)
		rotate(1, 2, newK) // step 3
		rotate(2, 2, newK)

		mu.Lock()
		got := applied
		mu.Unlock()
		var want []string
		for v := uint64(1); v <= version; v++ {
			want = append(want, fmt.Sprintf("ruleset@%d", v))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("applied %v, want %v", got, want)
		}
		for i, n := range nodes {
			if s := n.Stats(); s.Tampered != 0 || s.Retransmits != 0 {
				t.Errorf("node %d: %d messages refused, %d requests repeated", i+1, s.Tampered, s.Retransmits)
			}
			if s := sealers[i].Stats(); s.UnknownKey != 0 || s.BadAuth != 0 {
				t.Errorf("node %d sealer: UnknownKey %d BadAuth %d", i+1, s.UnknownKey, s.BadAuth)
			}
		}
	})
}
