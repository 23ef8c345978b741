package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/httpmetrics"
	"github.com/gocarp/gocarp/internal/realtime"
	"github.com/gocarp/gocarp/internal/sdnotify"
	"github.com/gocarp/gocarp/track"
	"github.com/gocarp/gocarp/vip"
)

// stepDownFor is ucarp's SIGUSR2 pause. ucarp sleeps 3 s and then
// restarts its state machine, which waits a whole master-down interval
// before it may take over again; carpd therefore suppresses takeover for
// 3 s plus the master-down interval. With only 3 s, a node whose peer has
// the same advbase and a larger skew would take over again before the peer's
// master-down timer fires, and SIGUSR2 would hand nothing over.
const stepDownFor = 3 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with an exit status, so deferred clean-ups run. Usage goes
// to stdout, errors and logs to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err == nil && !o.Help {
		err = checkScript("upscript", o.UpScript)
	}
	if err == nil && !o.Help {
		err = checkScript("downscript", o.DownScript)
	}
	var pass []byte
	if err == nil && !o.Help {
		pass, err = o.password()
	}
	if err != nil {
		fmt.Fprintf(stderr, "carpd: %v\nTry 'carpd --help'.\n", err)
		return 2
	}
	if o.Help {
		writeUsage(stdout)
		return 0
	}

	level := slog.LevelInfo
	if o.Debug {
		level = slog.LevelDebug
	}
	// Every library part adds what it knows to its own lines (the group
	// its vhid, the socket and link watcher their iface): they get base,
	// or base with what they do not add, so no line shows a key twice.
	base, closeLog, err := newBaseLogger(o, stderr, level, syslog.New)
	if err != nil {
		fmt.Fprintf(stderr, "carpd: %v\n", err)
		return 1
	}
	defer func() {
		if err := closeLog(); err != nil {
			fmt.Fprintf(stderr, "carpd: closing the syslog connection: %v\n", err)
		}
	}()
	log := base.With("iface", o.Interface, "vhid", o.VHID)
	if o.Realtime != 0 {
		setRealtime(log, o.Realtime) // before the group starts its goroutines
	} else {
		realtime.Adopt(log, "carpd") // a unit's CPUSchedulingPolicy=
	}

	// Catch signals from the start. A terminating one that arrives while
	// carpd starts (the start-up downscript may hang) kills that script
	// and ends carpd; the others are handled once the group runs.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	d := newDaemon(o, base)
	started := make(chan error, 1)
	go func() { started <- d.start(pass) }()
	var pending []os.Signal
	for {
		select {
		case err := <-started:
			if err != nil {
				log.Error("carpd: cannot start", "err", err)
				return 1
			}
			d.notifyReady()
			if !d.serve(pending, sigs) {
				return 1
			}
			return 0
		case sig := <-sigs:
			if !terminating(sig) {
				pending = append(pending, sig)
				continue
			}
			log.Info("carpd: shutting down while starting", "signal", sig.String())
			d.scripts.stop()
			err := <-started
			switch {
			case err == nil: // it got past the start-up script before the signal
				d.close()
			case !errors.Is(err, errAborted):
				log.Error("carpd: cannot start", "err", err)
				return 1
			}
			return 0
		}
	}
}

// terminating reports whether sig ends carpd.
func terminating(sig os.Signal) bool {
	return sig != syscall.SIGUSR1 && sig != syscall.SIGUSR2 && sig != syscall.SIGHUP
}

// errAborted is start's error when a terminating signal stopped it.
var errAborted = errors.New("start-up aborted by a signal")

// daemon is one running carpd: the group and what follows it.
type daemon struct {
	o       *options
	log     *slog.Logger // carpd's own lines: with iface and vhid
	base    *slog.Logger // for the library parts, which add those themselves
	scripts *scripts
	group   *carp.Group
	cfg     carp.Config // the group's configuration as last applied (reload.go)
	link    *carp.LinkWatcher
	demote  *demoteFile

	trackers []*track.Tracker // --track-script, --track-interface (track.go)

	// --manage-vip
	vmac     *vip.VirtualMAC
	mgr      *vip.NetlinkManager
	ann      *vip.PacketAnnouncer
	follower *vip.Follower

	noAccept *vip.NoAccept // --no-accept

	metrics *httpmetrics.Server // --metrics
	notify  *sdnotify.Notifier  // systemd's notify protocol
}

// newDaemon returns a daemon that start opens. Its scripts exist from the
// start, so that a signal can stop the start-up downscript. base carries no
// attributes.
func newDaemon(o *options, base *slog.Logger) *daemon {
	log := base.With("iface", o.Interface, "vhid", o.VHID)
	d := &daemon{o: o, log: log, base: base, notify: newNotifier(o, log)}
	d.scripts = &scripts{vhid: o.VHID, up: o.UpScript, down: o.DownScript, iface: o.Interface, addrs: addrStrings(o.Addrs),
		xparam: o.XParam, shutdown: o.Shutdown, timeout: o.ScriptTimeout, log: log}
	return d
}

// start opens everything and starts the group. On error it closes what it
// opened. After scripts.stop (a terminating signal) it returns errAborted
// once the start-up downscript has been killed, without starting the
// group.
func (d *daemon) start(pass []byte) (err error) {
	o, log := d.o, d.log
	groupLog := d.base.With("iface", o.Interface) // the group adds vhid
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	addrs := d.scripts.addrs

	ifi, err := net.InterfaceByName(o.Interface)
	if err != nil {
		return fmt.Errorf("interface %s: %w", o.Interface, err)
	}
	rc := &carp.RawConfig{Src4: o.SrcIP, Logger: d.base}
	has4, has6 := o.families()
	if has4 {
		rc.Families = append(rc.Families, carp.IPv4)
	}
	if has6 {
		rc.Families = append(rc.Families, carp.IPv6)
	}
	for _, p := range o.Peers {
		if p.Is4() {
			rc.Peers4 = append(rc.Peers4, p)
		} else {
			rc.Peers6 = append(rc.Peers6, p)
		}
	}
	if o.VMAC {
		// Before the transport: the master's adverts leave from the
		// virtual-MAC link, so they carry the virtual MAC as Ethernet
		// source (docs/interop.md, "Virtual MAC").
		if d.vmac, err = vip.NewVirtualMAC(ifi, o.VHID, &vip.VirtualMACConfig{MAC: o.virtualMAC(), Logger: d.base}); err != nil {
			return err
		}
		rc.SendInterface = d.vmac.Interface().Name
	}
	tr, err := carp.NewRawTransport(o.Interface, rc)
	if err != nil {
		return needCap(err, "CAP_NET_RAW") // caps.go
	}
	d.cfg = o.groupConfig(carp.Config{
		Password:     pass,
		Addrs:        o.Addrs,
		Preempt:      o.Preempt,
		IfIndex:      ifi.Index,
		Transport:    tr,
		Logger:       groupLog,
		OnTransition: d.onTransition,
		OnContested:  d.onContested,
	})
	d.group, err = carp.NewGroup(d.cfg)
	if err != nil {
		return errors.Join(err, tr.Close())
	}

	if o.NoAccept {
		// Before the group can become MASTER: no moment at which a fresh
		// master accepts (vip.NoAccept). Whoever installs the addresses
		// (--manage-vip or the upscript), they are dropped.
		if d.noAccept, err = vip.NewNoAccept(o.VHID, o.Addrs, &vip.NoAcceptConfig{Logger: log}); err != nil {
			return err
		}
	}
	if o.ManageVIP {
		if err := d.openVIP(ifi); err != nil {
			return err
		}
	}
	if !o.Neutral {
		d.scripts.startup()
	}
	if d.scripts.stopped() {
		return errAborted
	}
	if o.DemoteFile != "" {
		d.demote = startDemoteFile(o.DemoteFile, demotePoll, func(n int) { d.group.SetDemotion(demoteSource, n) }, log)
	}
	if err := d.startTrackers(); err != nil {
		return err
	}
	if !o.IgnoreIf {
		d.link, err = carp.NewLinkWatcher(o.Interface, d.group.SetLinkState, d.base)
		if err != nil {
			return err
		}
	}
	if err := d.openMetrics(); err != nil {
		return err
	}
	if err := d.group.Start(); err != nil {
		return err
	}
	d.metricsRunning(true)
	timing := []any{"advbase", o.AdvBase, "advskew", o.AdvSkew, "advert_interval", d.group.AdvertInterval()}
	if o.Interval != 0 {
		// What --interval was rounded to, for the peers' configuration.
		timing = append([]any{"interval", o.Interval}, timing...)
	}
	if o.Protocol == carp.ProtocolVRRPv3 {
		timing = []any{"priority", o.Priority, "advert_int", o.AdvertInterval}
	}
	attrs := append([]any{"protocol", o.Protocol, "addrs", addrs}, timing...)
	log.Info("carpd: started", append(attrs, "preempt", o.Preempt, "master_down", d.group.MasterDownInterval(),
		"manage_vip", o.ManageVIP, "script_timeout", d.scripts.timeout)...)
	return nil
}

// openVIP sets up --manage-vip: the addresses live on the interface, or on
// a macvlan with the virtual MAC (--vmac), and a vip.Follower installs,
// announces and withdraws them. The Follower removes any of them left by a
// crashed run as soon as it starts (docs/interop.md, "Stale addresses after a crash").
func (d *daemon) openVIP(parent *net.Interface) error {
	ifi := parent
	if d.vmac != nil { // created by start, before the transport
		ifi = d.vmac.Interface()
		d.checkARPSysctls(parent.Name)
	}
	var err error
	if d.mgr, err = vip.NewNetlinkManager(ifi, &vip.ManagerConfig{Logger: d.base}); err != nil {
		return err
	}
	if d.ann, err = vip.NewPacketAnnouncer(ifi, &vip.AnnouncerConfig{Logger: d.base}); err != nil {
		return err
	}
	d.follower, err = vip.NewFollower(vip.Config{
		VHID:           d.o.VHID,
		Addrs:          vip.Host(d.o.Addrs...),
		Manager:        d.mgr,
		Announcer:      d.ann,
		AdvertInterval: d.group.AdvertInterval(),
		Logger:         d.base.With("iface", d.o.Interface), // the follower adds vhid
	})
	if err != nil {
		return err
	}
	return d.follower.Start()
}

// checkARPSysctls warns when the parent of a virtual-MAC link would answer
// ARP for the VIPs with its own MAC (vip.VirtualMAC: arp_ignore must be 1,
// arp_announce 2; the kernel uses the larger of the "all" and the
// interface's value). carpd does not change host sysctls itself.
func (d *daemon) checkARPSysctls(parent string) {
	if has4, _ := d.o.families(); !has4 {
		return
	}
	for _, key := range []string{"arp_ignore", "arp_announce"} {
		eff := 0
		for _, dev := range []string{"all", parent} {
			b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + dev + "/" + key)
			if err != nil {
				d.log.Warn("carpd: cannot check ARP settings for --vmac", "err", err)
				return
			}
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				eff = max(eff, n)
			}
		}
		if want := map[string]int{"arp_ignore": 1, "arp_announce": 2}[key]; eff < want {
			d.log.Warn("carpd: with --vmac the parent interface answers ARP for the VIPs with its own MAC; raise the sysctl",
				"sysctl", "net.ipv4.conf."+parent+"."+key, "value", eff, "want", want)
		}
	}
}

// onTransition is the group's OnTransition: it runs on the group's
// notification goroutine, never on the protocol loop. The Follower only
// queues the change, so addresses move at once even while a script runs.
func (d *daemon) onTransition(t carp.Transition) {
	d.notifyState(t.To)
	if d.follower != nil {
		d.follower.Handle(t)
	}
	d.scripts.handle(t)
}

// onContested is the group's OnContested: as MASTER it out-ranked another
// node that had taken the group over (a split brain healing, a backup that
// missed an advert). That node announced the addresses with its own MAC;
// with --manage-vip the follower announces them again at once, so the
// neighbours come back before their caches expire. The scripts are not
// run: the state did not change.
func (d *daemon) onContested(c carp.Contest) {
	if d.follower != nil {
		d.follower.HandleContest(c)
	}
}

// shutdownGrace is what carpd's shutdown may take beyond --script-timeout
// (the --shutdown downscript's share): the bow-out, withdrawing the
// addresses. Past it carpd kills any script and exits anyway, with status
// 1, leaving behind the step that hangs (say, an address change stuck in
// the kernel).
const shutdownGrace = 5 * time.Second

// serve handles signals (first those that arrived during start-up) until
// one ends carpd, then shuts down; a second one during the shutdown kills
// a script still running. It reports whether the shutdown finished.
func (d *daemon) serve(pending []os.Signal, sigs <-chan os.Signal) bool {
	for {
		var sig os.Signal
		if len(pending) > 0 {
			sig, pending = pending[0], pending[1:]
		} else {
			sig = <-sigs
		}
		switch sig {
		case syscall.SIGUSR1:
			d.logStats("status")
		case syscall.SIGUSR2:
			pause := stepDownFor + d.group.MasterDownInterval()
			d.log.Info("carpd: SIGUSR2: stepping down", "state", d.group.State(), "for", pause)
			d.group.StepDown(pause)
		case syscall.SIGHUP:
			d.reload() // reload.go
		default:
			d.log.Info("carpd: shutting down", "signal", sig.String(), "state", d.group.State())
			d.notifyStopping()
			bound := d.scripts.limit() + shutdownGrace
			// A second terminating signal cuts the --shutdown downscript
			// short (its timeout may be long): it is killed at once.
			finished := awaitClose(d.close, bound, sigs, func(sig os.Signal) {
				d.log.Warn("carpd: second signal: killing any script now", "signal", sig.String())
				d.scripts.close()
			})
			if !finished {
				d.scripts.close()
				d.log.Error("carpd: shutdown not finished; exiting anyway", "waited", bound)
			}
			d.logStats("final status")
			return finished
		}
	}
}

// awaitClose runs close on its own goroutine and waits for it to return,
// at most bound; a terminating signal meanwhile is passed to onSignal. It
// reports whether close returned.
func awaitClose(close func(), bound time.Duration, sigs <-chan os.Signal, onSignal func(os.Signal)) bool {
	closed := make(chan struct{}, 1) // an abandoned close can still send
	go func() {
		defer func() { closed <- struct{}{} }()
		close()
	}()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		select {
		case <-closed:
			return true
		case <-timer.C:
			return false
		case sig := <-sigs:
			if terminating(sig) {
				onSignal(sig)
			}
		}
	}
}

// close stops everything in order: a script still running is killed
// (it would hold the group's last transition), then the group (bow-out
// advert, the last transition and, with --shutdown, its downscript,
// bounded by --script-timeout), then the address follower, which
// withdraws the addresses it installed. No script survives it.
func (d *daemon) close() {
	d.metricsRunning(false)
	d.scripts.stop()
	if d.link != nil {
		if err := d.link.Close(); err != nil {
			d.log.Warn("carpd: link watcher", "err", err)
		}
	}
	if d.demote != nil {
		d.demote.Close()
	}
	if d.group != nil {
		if err := d.group.Close(); err != nil {
			d.log.Warn("carpd: closing group", "err", err)
		}
	}
	// After the group: a demotion cleared while it still ran could let
	// it take over from its peer just before the bow-out.
	d.closeTrackers()
	d.scripts.close() // the group may have stopped waiting for a script
	var errs []error
	if d.follower != nil {
		errs = append(errs, d.follower.Close())
	}
	if d.ann != nil {
		errs = append(errs, d.ann.Close())
	}
	if d.mgr != nil {
		errs = append(errs, d.mgr.Close())
	}
	if d.vmac != nil {
		errs = append(errs, d.vmac.Close())
	}
	if d.noAccept != nil {
		// After the addresses are gone (the downscript ran above).
		errs = append(errs, d.noAccept.Close())
	}
	if err := errors.Join(errs...); err != nil {
		d.log.Warn("carpd: releasing addresses", "err", err)
	}
	d.closeMetrics()
}

// logStats logs the state, the goroutine count and carp(4)'s counters on
// one line ("badauth=3"), for SIGUSR1 and on exit. Its messages, "status"
// and "final status", have no "carpd:" prefix: monitoring (and the chaos
// soak) picks these lines by them. The goroutine count lets
// a long run (the chaos soak) see a goroutine leak from outside.
func (d *daemon) logStats(msg string) {
	s := d.group.Stats()
	attrs := []any{
		"state", d.group.State(), "demotion", d.group.Demotion(), "goroutines", runtime.NumGoroutine(),
		"ipackets", s.Ipackets, "ipackets6", s.Ipackets6, "badif", s.Badif, "badttl", s.Badttl,
		"hdrops", s.Hdrops, "badsum", s.Badsum, "badver", s.Badver, "badlen", s.Badlen,
		"badauth", s.Badauth, "badvhid", s.Badvhid, "badloop", s.Badloop, "replay", s.Replay,
		"suppressed", s.Suppressed, "contested", s.Contested, "late_timers", s.LateTimers, "vrrp", s.VRRP,
		"vrrpv2", s.VRRPv2, "carp", s.CARP,
		"opackets", s.Opackets, "opackets6", s.Opackets6, "oerrors", s.Oerrors, "preempt", s.Preempt,
	}
	sc := d.scripts.stats()
	attrs = append(attrs, "script_runs", sc.Runs, "script_failures", sc.Failures,
		"script_timeouts", sc.Timeouts, "script_kills", sc.Kills)
	if d.follower != nil {
		v := d.follower.Stats()
		attrs = append(attrs, "vip_installs", v.Installs, "vip_withdrawals", v.Withdrawals,
			"vip_repairs", v.Repairs, "vip_announcements", v.Announcements, "vip_errors", v.Errors)
	}
	d.log.Info(msg, attrs...)
}

// addrStrings formats addresses for script arguments and logs.
func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// groupConfig completes c with the protocol and its timing from the
// command line.
func (o *options) groupConfig(c carp.Config) carp.Config {
	c.VHID = o.VHID
	c.Protocol = o.Protocol
	if o.Protocol == carp.ProtocolVRRPv3 {
		c.Priority = o.Priority
		c.AdvertInterval = o.AdvertInterval
		return c
	}
	c.AdvBase = o.AdvBase
	c.ZeroAdvBase = o.AdvBase == 0 // sub-second (docs/sub-second.md)
	c.AdvSkew = o.AdvSkew
	c.DemoteInSkew = o.DemoteSkew
	c.Profile = carp.ProfileUCarp
	c.DeadRatio = o.DeadRatio
	return c
}
