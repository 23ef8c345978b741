package chaos

import (
	"flag"
	"os"
	"testing"
	"time"
)

var (
	duration = flag.Duration("chaos.duration", 30*time.Second, "how long events are injected (CI: the default; a soak: 30m, with -timeout raised)")
	seed     = flag.Uint64("chaos.seed", 0, "seed of the schedule; 0 picks one from the clock (printed)")
	slack    = flag.Duration("chaos.slack", 500*time.Millisecond, "added to every time bound (observation cadence, a loaded machine)")
	poll     = flag.Duration("chaos.poll", 50*time.Millisecond, "cadence of the address and master checks")
	tcpFlows = flag.Int("chaos.tcp", 20, "long-lived TCP flows through the firewall pair")
	udpFlows = flag.Int("chaos.udp", 4, "UDP flows through the firewall pair")
	race     = flag.Bool("chaos.race", false, "build carpd and fwpair with the race detector")
)

// TestSoak is the chaos soak (see the package documentation): short by
// default, as long as -chaos.duration asks.
func TestSoak(t *testing.T) {
	cfg := Config{Duration: *duration, Seed: *seed, Slack: *slack, Poll: *poll,
		TCPFlows: *tcpFlows, UDPFlows: *udpFlows, Race: *race}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_DURATION=%q: want a positive duration (e.g. 30m)", s)
		}
		cfg.Duration = d
	}
	for _, v := range Run(t, cfg) {
		t.Errorf("%v", v)
	}
}
