package confsync_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocarp/gocarp/confsync"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
)

func TestStateFileRefusedWhenCorrupt(t *testing.T) {
	nw, err := pfsynctest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := nw.Attach(2)
	defer tr.Close()
	_, err = confsync.New(confsync.Config{Node: 2, Transport: tr, Sealer: newSealer(t, 2, 3),
		Subscribe: map[string]pfsync.NodeID{"ruleset": 1},
		Apply:     func(string, uint64, []byte) error { return nil }, StateFile: path})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt state file: got %v, want an error naming %s", err, path)
	}
}

func TestCloseIdempotent(t *testing.T) {
	nw, err := pfsynctest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := confsync.New(confsync.Config{Node: 1, Transport: nw.Attach(1), Sealer: newSealer(t, 1, 3), Publish: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	for range 2 {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Publish("a", 1, nil); !errors.Is(err, confsync.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
}
