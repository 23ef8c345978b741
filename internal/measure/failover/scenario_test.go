package main

import (
	"testing"
	"time"
)

func TestParseScenario(t *testing.T) {
	for _, tc := range []struct {
		in             string
		master, backup string
		interval       time.Duration
		fail           string
	}{
		{"carpd-kill", carpdCARP, carpdCARP, time.Second, failKill},
		{"carpd+ucarp-term", carpdCARP, ucarp, time.Second, failTerm},
		{"keepalived@100ms-crash", keepalived, keepalived, 100 * time.Millisecond, failCrash},
		{"carpd.vrrp3+keepalived@1s-kill", carpdVRRP, keepalived, time.Second, failKill},
		{" carpd@100ms-term ", carpdCARP, carpdCARP, 100 * time.Millisecond, failTerm},
	} {
		s, err := parseScenario(tc.in)
		if err != nil {
			t.Errorf("parseScenario(%q): %v", tc.in, err)
			continue
		}
		if s.master != tc.master || s.backup != tc.backup || s.interval != tc.interval || s.fail != tc.fail {
			t.Errorf("parseScenario(%q) = %+v", tc.in, s)
		}
	}
	for _, bad := range []string{"carpd", "carpd-reboot", "vrrpd-kill", "carpd+keepalived-kill", "ucarp@100ms-kill",
		"carpd@5ms-kill", "carpd@2s-kill", "carpd@105ms-kill", "keepalived@fast-kill"} {
		if s, err := parseScenario(bad); err == nil {
			t.Errorf("parseScenario(%q) = %+v, want an error", bad, s)
		}
	}
}

// The CARP pair below a second advertises at the interval asked for and
// its backup's master-down interval is not longer than VRRPv3's.
func TestFastSkews(t *testing.T) {
	const tick = time.Second / 256
	for _, iv := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond} {
		m, b := fastSkews(iv)
		if d := time.Duration(m)*tick - iv; d < -tick/2 || d > tick/2 {
			t.Errorf("%v: master advskew %d advertises every %v", iv, m, time.Duration(m)*tick)
		}
		down := 3 * time.Duration(b) * tick
		vrrp := vrrpMasterDown(iv, vrrpBackupPrio)
		if b <= m || b > 254 || down > vrrp || down <= vrrp-3*tick {
			t.Errorf("%v: backup advskew %d: master-down %v, VRRPv3's %v", iv, b, down, vrrp)
		}
	}
	if m, b := fastSkews(100 * time.Millisecond); m != 26 || b != 30 {
		t.Errorf("fastSkews(100ms) = %d, %d; want 26, 30", m, b)
	}
}

func TestNominal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"carpd-kill", 3*time.Second + 100*time.Second/256},
		{"carpd-term", 0},
		{"ucarp-term", 3*time.Second + 100*time.Second/256},
		{"keepalived-kill", 3*time.Second + 156*time.Second/256},
		{"carpd.vrrp3-term", 156 * time.Second / 256},
		{"keepalived@100ms-crash", 300*time.Millisecond + 15600*time.Millisecond/256},
		{"carpd@100ms-kill", 90 * time.Second / 256},
	} {
		s, err := parseScenario(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.nominal(); got != tc.want {
			t.Errorf("%s: nominal %v, want %v", tc.in, got, tc.want)
		}
	}
}
