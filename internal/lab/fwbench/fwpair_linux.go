package fwbench

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/seal"
)

// FwpairBinary builds examples/fwpair once per test binary, in a
// temporary directory that Remove deletes (call it from TestMain). The zero
// value is ready to use.
type FwpairBinary struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Path builds the daemon on first use and returns its path, failing tb if
// the build fails.
func (f *FwpairBinary) Path(tb testing.TB) string {
	tb.Helper()
	f.once.Do(func() {
		if f.dir, f.err = os.MkdirTemp("", "fwpair-"); f.err != nil {
			return
		}
		f.bin = filepath.Join(f.dir, "fwpair")
		cmd := exec.Command("go", "build", "-o", f.bin, "github.com/gocarp/gocarp/examples/fwpair")
		if out, err := cmd.CombinedOutput(); err != nil {
			f.err = fmt.Errorf("fwbench: building fwpair: %v\n%s", err, out)
		}
	})
	if f.err != nil {
		tb.Fatal(f.err)
	}
	return f.bin
}

// Remove deletes the built binary and its directory.
func (f *FwpairBinary) Remove() error {
	if f.dir == "" {
		return nil
	}
	return os.RemoveAll(f.dir)
}

// FwpairOptions are the knobs the lab's fwpair configurations vary.
type FwpairOptions struct {
	// KeyFile is the sync pre-shared key; empty means the lab's key.
	KeyFile string
	// Commit is sync.commit; empty means fwpair's default (direct).
	Commit string
	// CommitTimeout is sync.commit_timeout; zero means 10 s (the lab
	// commits up to 100 000 flows).
	CommitTimeout time.Duration
	// StartAsMaster is carp.start_as_master.
	StartAsMaster bool
	// Metrics is metrics.listen (in the firewall's namespace); empty is
	// off.
	Metrics string
	// BulkRate is sync.bulk_rate (frames per second of the bulk syncs this
	// node sends); zero means fwpair's default.
	BulkRate int
	// Protocol is carp.protocol: empty for CARP (advskew 0 on fw1, 100 on
	// fw2), "vrrp3" for VRRPv3 (priority 200 on fw1, 100 on fw2).
	Protocol string
	// Extra are top-level keys added to the configuration (e.g. "track"),
	// replacing the lab's own of the same name.
	Extra map[string]any
	// AdvertInt is carp.advert_int with "vrrp3"; zero means fwpair's
	// default (1 s).
	AdvertInt time.Duration
	// Interval is fw1's carp.interval (CARP below one second: advbase 0)
	// instead of advbase 1; fw2 advertises every 7/6 of it, so that its
	// master-down interval, three of its own intervals, is about VRRPv3's
	// at the same interval for a backup of priority 100 (3 + 156/256
	// intervals): 100 ms gives fw1 advskew 26 (101.6 ms) and fw2 30
	// (master-down 351.6 ms, VRRPv3's 360.9 ms).
	Interval time.Duration
}

// KeyFile returns the path of the lab's sync key, creating it on first use.
func (l *Lab) KeyFile() string {
	p := filepath.Join(l.Dir, "sync.key")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if err := l.NewKeyFile(p); err != nil {
		l.T.Fatal(err)
	}
	return p
}

// NewKeyFile writes a new random key at path.
func (l *Lab) NewKeyFile(path string) error {
	k, err := seal.GenerateKey()
	if err != nil {
		return err
	}
	return seal.WriteKeyFile(path, k)
}

// FwpairConfig writes firewall i's fwpair configuration (node i, advskew 0
// for fw1 and 100 for fw2, preemption, LAN vhid 1 and WAN vhid 2, sealed
// UDP unicast on the sync link) and returns its path and the path of its
// control socket.
func (l *Lab) FwpairConfig(i int, o FwpairOptions) (cfgPath, socket string) {
	dir := filepath.Join(l.Dir, fmt.Sprintf("fw%d", i))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		l.T.Fatal(err)
	}
	peer := 3 - i
	key := o.KeyFile
	if key == "" {
		key = l.KeyFile()
	}
	if o.CommitTimeout == 0 {
		o.CommitTimeout = 10 * time.Second
	}
	skew := 0
	if i == 2 {
		skew = 100
	}
	carpSection := map[string]any{
		"advbase": 1, "advskew": skew, "password": "lab-carp-pw", "preempt": true,
		"start_as_master": o.StartAsMaster, "start_wait": "1s",
	}
	if o.Interval != 0 {
		iv := o.Interval
		if i == 2 {
			iv = (iv * 7 / 6).Round(time.Millisecond)
		}
		delete(carpSection, "advbase")
		delete(carpSection, "advskew")
		carpSection["interval"] = iv.String()
	}
	if o.Protocol == "vrrp3" {
		carpSection = map[string]any{
			"protocol": "vrrp3", "priority": 200 - skew, "preempt": true,
			"start_as_master": o.StartAsMaster, "start_wait": "1s",
		}
		if o.AdvertInt != 0 {
			carpSection["advert_int"] = o.AdvertInt.String()
		}
	}
	socket = filepath.Join(dir, "fwpair.sock")
	cfg := map[string]any{
		"node":           i,
		"control_socket": socket,
		"log_level":      "info",
		"carp":           carpSection,
		"groups": []any{
			map[string]any{"name": "lan", "vhid": 1, "interface": LANIf, "addresses": []string{LANVIP.String(), LANVIP6.String()}},
			map[string]any{"name": "wan", "vhid": 2, "interface": WANIf, "addresses": []string{WANVIP.String(), WANVIP6.String()}},
		},
		"sync": map[string]any{
			"interface": SyncIf,
			"local":     FWAddr(i, "sync").String() + ":7240",
			"peers":     []any{map[string]any{"node": peer, "address": FWAddr(peer, "sync").String() + ":7240"}},
			"key_file":  key, "boot_file": filepath.Join(dir, "boot"),
			"commit_timeout": o.CommitTimeout.String(),
			"heartbeat":      "250ms", "flush_delay": "20ms",
		},
		"conntrack": map[string]any{"protocols": []string{"tcp", "udp", "icmp"}},
	}
	if o.Commit != "" {
		cfg["sync"].(map[string]any)["commit"] = o.Commit
	}
	if o.Metrics != "" {
		cfg["metrics"] = map[string]any{"listen": o.Metrics}
	}
	if o.BulkRate != 0 {
		cfg["sync"].(map[string]any)["bulk_rate"] = o.BulkRate
	}
	for k, v := range o.Extra {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		l.T.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "fwpair.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		l.T.Fatal(err)
	}
	return cfgPath, socket
}

// FwpairStatus is the part of fwpair's status (fwpair -status) the lab
// reads. The full type is examples/fwpair's Status.
type FwpairStatus struct {
	Node   uint32 `json:"node"`
	Groups []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Demotion int    `json:"demotion"`
	} `json:"groups"`
	Sync struct {
		PeersUp      int  `json:"peers_up"`
		Records      int  `json:"records"`
		LocalRecords int  `json:"local_records"`
		External     int  `json:"external"`
		BulkDone     bool `json:"bulk_done"`
		BulkExpected int  `json:"bulk_expected"`
		BulkReceived int  `json:"bulk_received"`
		Demotion     int  `json:"demotion"`
		Commits      []struct {
			VHID    int       `json:"vhid"`
			At      time.Time `json:"at"`
			Records int       `json:"records"`
			Took    string    `json:"took"`
		} `json:"commits"`
	} `json:"sync"`
}

// AllIn reports whether every group is in state s.
func (st *FwpairStatus) AllIn(s string) bool {
	for _, g := range st.Groups {
		if g.State != s {
			return false
		}
	}
	return len(st.Groups) > 0
}

// QueryFwpair reads the status from a fwpair control socket.
func QueryFwpair(socket string) (*FwpairStatus, error) {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	// The request: a client that sends none gets the status only after
	// the daemon stopped waiting for one.
	if _, err := io.WriteString(c, "status\n"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	var st FwpairStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// WaitFwpair polls firewall's control socket until cond holds on its
// status, or fails the test after timeout (which only turns a hang into a
// failure). It returns the status that satisfied cond.
func (l *Lab) WaitFwpair(socket, what string, timeout time.Duration, cond func(*FwpairStatus) bool) *FwpairStatus {
	l.T.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last *FwpairStatus
	var lastErr error
	for time.Now().Before(deadline) {
		st, err := QueryFwpair(socket)
		if err == nil && cond(st) {
			return st
		}
		last, lastErr = st, err
		<-tick.C
	}
	l.T.Fatalf("%s: not reached within %v (last status %+v, err %v)", what, timeout, last, lastErr)
	return nil
}
