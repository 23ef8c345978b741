package main

import (
	"encoding/json"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// TestNoAcceptPair: a VRRPv3 pair with "carp": {"accept": false}. The
// master routes the client's traffic (its virtual address is the client's
// gateway) but does not answer the client's ping to that address; the
// rule's table goes with the daemon.
func TestNoAcceptPair(t *testing.T) {
	p := newPair(t, "nac", [3]fwbench.FwpairOptions{1: {StartAsMaster: true, Protocol: "vrrp3"}, 2: {Protocol: "vrrp3"}})
	b, err := os.ReadFile(p.cfg[1])
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["carp"].(map[string]any)["accept"] = false
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.cfg[1], b, 0o600); err != nil {
		t.Fatal(err)
	}
	p.start(1)
	p.wait(1, "fw1 MASTER", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })

	if _, err := p.FW[1].Output("nft", "list", "table", "inet", noAcceptTable); err != nil {
		t.Fatalf("table %s missing while fwpair runs: %v", noAcceptTable, err)
	}
	netns.RequireBinary(t, "ping")
	// Forwarded through the master: answered.
	p.Client.Run("ping", "-c", "1", "-W", "2", fwbench.ServerAddr.String())
	// Addressed to the master's virtual address: dropped.
	if out, err := p.Client.Output("ping", "-c", "1", "-W", "1", fwbench.LANVIP.String()); err == nil {
		t.Errorf("ping %v answered with carp.accept false:\n%s", fwbench.LANVIP, out)
	}

	if err := p.proc[1].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.proc[1].Done()
	if out, err := p.FW[1].Output("nft", "list", "table", "inet", noAcceptTable); err == nil {
		t.Errorf("table %s left after exit:\n%s", noAcceptTable, out)
	}
}
