package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The daemons a scenario can run on a node. carpd speaks CARP or, as
// "carpd.vrrp3", VRRPv3; ucarp speaks CARP, keepalived VRRPv3.
const (
	carpdCARP  = "carpd"
	carpdVRRP  = "carpd.vrrp3"
	ucarp      = "ucarp"
	keepalived = "keepalived"
)

// protocolOf returns the wire protocol a daemon speaks.
func protocolOf(daemon string) string {
	switch daemon {
	case carpdCARP, ucarp:
		return "carp"
	case carpdVRRP, keepalived:
		return "vrrp3"
	}
	return ""
}

// The failures a trial injects.
const (
	failKill  = "kill"  // SIGKILL of the daemon's process group
	failCrash = "crash" // the node's switch port down: the host vanishes
	failTerm  = "term"  // SIGTERM: a graceful stop
)

// Timing of the pair. The master is the preferred node; the backup waits
// its master-down interval after the last advert it heard.
const (
	// CARP with advbase 1: the backup's advskew (the master's is 0).
	carpBackupSkew = 100
	// VRRPv3: the priorities of master and backup (keepalived's usual
	// pair), the same for carpd and keepalived.
	vrrpMasterPrio = 200
	vrrpBackupPrio = 100
)

// fastSkews returns the advskew of master and backup for CARP below one
// second (advbase 0, where the advert interval is advskew/256 s): the
// master's interval is the one asked for, rounded to 1/256 s; the
// backup's is a little longer, so that its master-down interval (three of
// its own intervals) is the largest that does not exceed VRRPv3's
// Master_Down_Interval at the same interval and backup priority. Neither
// protocol then gets a head start in the comparison.
func fastSkews(interval time.Duration) (master, backup int) {
	const tick = time.Second / 256
	master = int((interval + tick/2) / tick)
	limit := vrrpMasterDown(interval, vrrpBackupPrio)
	backup = int(limit / (3 * tick))
	return master, backup
}

// vrrpMasterDown is RFC 5798's Master_Down_Interval of a backup of the
// given priority following a master that advertises every interval.
func vrrpMasterDown(interval time.Duration, prio int) time.Duration {
	return 3*interval + time.Duration(256-prio)*interval/256
}

// scenario is the master's and the backup's daemon, the advert interval
// and one way of failing.
type scenario struct {
	name           string
	master, backup string
	interval       time.Duration // 1 s, or below a second
	fail           string
}

// parseScenario parses MASTER[+BACKUP][@INTERVAL]-FAILURE, e.g.
// "carpd-kill" (carpd on both nodes, advbase 1), "keepalived@100ms-crash",
// "carpd+ucarp-term". The interval defaults to 1 s; CARP daemons take 1 s
// or a sub-second interval (advbase 0, needs carpd only), ucarp only 1 s.
func parseScenario(s string) (scenario, error) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return scenario{}, fmt.Errorf("scenario %q: want MASTER[+BACKUP][@INTERVAL]-{kill,crash,term}", s)
	}
	sc := scenario{name: s, fail: s[i+1:], interval: time.Second}
	switch sc.fail {
	case failKill, failCrash, failTerm:
	default:
		return scenario{}, fmt.Errorf("scenario %q: unknown failure %q (kill, crash, term)", s, sc.fail)
	}
	ds, iv, timed := strings.Cut(s[:i], "@")
	if timed {
		d, err := time.ParseDuration(iv)
		if err != nil || d < 10*time.Millisecond || d > time.Second || d%(10*time.Millisecond) != 0 {
			return scenario{}, fmt.Errorf("scenario %q: interval %q out of range 10ms-1s in steps of 10ms", s, iv)
		}
		sc.interval = d
	}
	m, b, pair := strings.Cut(ds, "+")
	if !pair {
		b = m
	}
	sc.master, sc.backup = m, b
	for _, d := range []string{m, b} {
		if protocolOf(d) == "" {
			return scenario{}, fmt.Errorf("scenario %q: unknown daemon %q (carpd, carpd.vrrp3, ucarp, keepalived)", s, d)
		}
		if d == ucarp && sc.interval != time.Second {
			return scenario{}, fmt.Errorf("scenario %q: ucarp runs only at 1s here", s)
		}
	}
	if protocolOf(m) != protocolOf(b) {
		return scenario{}, fmt.Errorf("scenario %q: %s and %s speak different protocols", s, m, b)
	}
	return sc, nil
}

// protocol returns the scenario's wire protocol, "carp" or "vrrp3".
func (s scenario) protocol() string { return protocolOf(s.master) }

// masterDown is the backup's nominal master-down interval: how long after
// the old master's last advert the backup becomes master, if nothing is
// late. A graceful stop is faster (see bowOut).
func (s scenario) masterDown() time.Duration {
	if s.protocol() == "vrrp3" {
		return vrrpMasterDown(s.interval, vrrpBackupPrio)
	}
	if s.interval == time.Second {
		return 3*time.Second + carpBackupSkew*time.Second/256
	}
	_, b := fastSkews(s.interval)
	return 3 * time.Duration(b) * time.Second / 256
}

// bowOut is the nominal takeover after a graceful stop, from the old
// master's last advert: VRRPv3's skew time after its priority-0 advert,
// at once after carpd's bow-out advert, the whole master-down interval
// after ucarp's silence.
func (s scenario) bowOut() time.Duration {
	switch s.master {
	case ucarp:
		return s.masterDown()
	case carpdCARP:
		if s.backup == ucarp {
			return -1 // ucarp's own rule, see BENCHMARKS.md
		}
		return 0
	}
	return time.Duration(256-vrrpBackupPrio) * s.interval / 256
}

// nominal is what a trial's "last advert → new master" should be.
func (s scenario) nominal() time.Duration {
	if s.fail == failTerm {
		return s.bowOut()
	}
	return s.masterDown()
}

// role is the master or the backup of a trial.
type role struct {
	master bool
	node   node
}

// command returns the command line of daemon d in role r, writing any
// file it needs at paths starting with prefix (unique to the trial).
func (s scenario) command(d string, r role, bins map[string]string, prefix string) ([]string, error) {
	n := r.node
	switch d {
	case carpdCARP, ucarp:
		args := []string{bins[d], "-i", "eth0", "-s", n.ip.String(), "-v", vhid, "-p", pass, "-a", vip}
		skew := 0
		if !r.master {
			skew = carpBackupSkew
		}
		if s.interval != time.Second {
			m, b := fastSkews(s.interval)
			skew = b
			if r.master {
				skew = m
			}
			args = append(args, "-b", "0")
		}
		args = append(args, "-k", strconv.Itoa(skew))
		if d == ucarp {
			return append(args, "-f", "none"), nil
		}
		// carpd installs and announces the address itself, as keepalived
		// does, so that the announcement times compare.
		return append(args, "--manage-vip"), nil
	case carpdVRRP:
		prio := vrrpBackupPrio
		if r.master {
			prio = vrrpMasterPrio
		}
		return []string{bins[d], "--protocol", "vrrp3", "-i", "eth0", "-s", n.ip.String(), "-v", vhid, "-a", vip,
			"--priority", strconv.Itoa(prio), "--advert-int", s.interval.String(), "--manage-vip"}, nil
	case keepalived:
		prio := vrrpBackupPrio
		if r.master {
			prio = vrrpMasterPrio
		}
		conf := prefix + "-" + n.name + "-keepalived.conf"
		if err := os.WriteFile(conf, []byte(keepalivedConf(n.name, prio, s.interval)), 0o644); err != nil {
			return nil, err
		}
		// -n: foreground; -P: VRRP only. The parent and its VRRP child
		// share the process group a kill ends.
		return []string{bins[d], "-n", "-l", "-D", "-P", "-f", conf,
			"-p", prefix + "-" + n.name + "-keepalived.pid", "-r", prefix + "-" + n.name + "-vrrp.pid"}, nil
	}
	return nil, fmt.Errorf("unknown daemon %q", d)
}

// keepalivedConf is a VRRPv3 instance of the trial's virtual router.
// Both nodes start as BACKUP; the priorities decide.
func keepalivedConf(name string, prio int, interval time.Duration) string {
	return fmt.Sprintf(`global_defs {
  router_id gcf-%s
}
vrrp_instance VI {
  version 3
  state BACKUP
  interface eth0
  virtual_router_id %s
  priority %d
  advert_int %s
  virtual_ipaddress {
    %s/24
  }
}
`, name, vhid, prio, strconv.FormatFloat(interval.Seconds(), 'f', -1, 64), vip)
}

// readyLine is the log line daemon d writes once it runs as a backup and
// follows the master's adverts.
func readyLine(d string) string {
	switch d {
	case keepalived:
		return "Entering BACKUP STATE"
	case ucarp:
		return "Switching to state: BACKUP"
	}
	return "state=BACKUP"
}
