package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gocarp/gocarp/internal/realtime"
	"github.com/gocarp/gocarp/pfsync/seal"
)

const defaultConfigPath = "/etc/fwpair/fwpair.json"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with an exit status: 0 after a signal (or a successful
// -check, -status, -genkey), 1 when the daemon cannot run, 2 for a bad
// command line or configuration.
func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("fwpair", flag.ContinueOnError)
	fl.SetOutput(stderr)
	configPath := fl.String("config", defaultConfigPath, "configuration `file` (JSON, see the package documentation)")
	check := fl.Bool("check", false, "validate the configuration, the key file, the boot file directory, the firewall ruleset (nft -c) and the files, print the configuration with defaults filled in, and exit")
	status := fl.Bool("status", false, "print the status of the fwpair running with this configuration (its control socket) and exit")
	reload := fl.Bool("reload", false, "make the fwpair running with this configuration read it again and apply the changes live (as SIGHUP does); print them and exit")
	maintenance := fl.String("maintenance", "", "`on|off`: with on, hand every group to the peer and keep them there, across restarts, until off; print the mode and exit")
	socket := fl.String("socket", "", "with -status, -reload, -maintenance: control socket `path` (default: control_socket of -config)")
	genkey := fl.String("genkey", "", "write a new sync pre-shared key to `file` (mode 0600) and exit")
	logFormat := fl.String("log-format", "text", "log lines as key=value `text` or as json objects")
	fl.Usage = func() {} // -h prints writeUsage on stdout; a bad flag only its error
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(stdout, fl)
			return 0
		}
		fmt.Fprintln(stderr, "Try 'fwpair -h'.")
		return 2
	}
	if err := checkLogFormat(*logFormat); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "fwpair: unexpected argument %q\n", fl.Arg(0))
		return 2
	}

	if *genkey != "" {
		key, err := seal.GenerateKey()
		if err == nil {
			err = seal.WriteKeyFile(*genkey, key)
		}
		if err != nil {
			fmt.Fprintf(stderr, "fwpair: %v\n", err)
			return 1
		}
		return 0
	}
	if n := countTrue(*check, *status, *reload, *maintenance != ""); n > 1 {
		fmt.Fprintln(stderr, "fwpair: -check, -status, -reload and -maintenance exclude each other")
		return 2
	}
	var maintOn bool
	if *maintenance != "" {
		var err error
		if maintOn, err = parseMaintenanceArg(*maintenance); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	if *status && *socket != "" {
		return printStatus(*socket, stdout, stderr)
	}
	cfg, err := LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	sock := cfg.ControlSocket
	if *socket != "" {
		sock = *socket
	}
	switch {
	case *reload:
		return requestReload(sock, stdout, stderr)
	case *maintenance != "":
		return requestMaintenance(cfg, sock, maintOn, stdout, stderr)
	case *check:
		if err := checkFiles(cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		fmt.Fprint(stdout, cfg.String())
		return 0
	case *status:
		return printStatus(cfg.ControlSocket, stdout, stderr)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintf(stderr, "fwpair: log_level: %v\n", err)
		return 2
	}
	log := newFormatLogger(stderr, level, effectiveLogFormat(fl, *logFormat, cfg.LogFormat))
	// fwpair does not choose a real-time policy (docs/sub-second.md says
	// why); one set by its unit gets GOMAXPROCS lowered.
	realtime.Adopt(log, "fwpair")

	// Catch signals before anything starts: a terminating one during
	// start-up (start_as_master waits up to start_wait for a peer) stops
	// it, and one right after the groups start still gets the bow-out.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, abort := context.WithCancel(context.Background())
	defer abort()
	type startResult struct {
		d   *daemon
		err error
	}
	started := make(chan startResult, 1)
	go func() {
		d, err := newDaemon(ctx, cfg, log)
		started <- startResult{d, err}
	}()
	var pending []os.Signal
	for {
		select {
		case r := <-started:
			if r.err != nil {
				log.Error("fwpair: cannot start", "err", r.err)
				return 1
			}
			r.d.notifyReady()
			r.d.serve(pending, sigs)
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 || sig == syscall.SIGHUP {
				pending = append(pending, sig)
				continue
			}
			log.Info("fwpair: shutting down while starting", "signal", sig.String())
			abort()
			r := <-started
			switch {
			case r.err == nil: // it had started the groups already
				r.d.close()
			case !errors.Is(r.err, errAborted):
				log.Error("fwpair: cannot start", "err", r.err)
				return 1
			}
			return 0
		}
	}
}

// newLogger returns fwpair's logger: text lines on w. It adds no
// attributes: the libraries add the ones they know (the engine its node, a
// group its vhid, a socket its iface), and a key added here as well would
// show twice on their lines.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// printStatus queries a running daemon and prints its status as indented
// JSON.
func printStatus(path string, stdout, stderr io.Writer) int {
	st, err := QueryStatus(path, 5*time.Second)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(st); err != nil {
		fmt.Fprintf(stderr, "fwpair: %v\n", err)
		return 1
	}
	return 0
}

// serve handles signals (first those that arrived during start-up) until
// one ends the daemon: SIGUSR1 logs the status; SIGHUP reloads the
// configuration (reload.go); SIGTERM and SIGINT shut down (MASTER groups
// send their bow-out advert, addresses are withdrawn), each step bounded
// by shutdownStep.
func (d *daemon) serve(pending []os.Signal, sigs <-chan os.Signal) {
	for {
		var sig os.Signal
		if len(pending) > 0 {
			sig, pending = pending[0], pending[1:]
		} else {
			sig = <-sigs
		}
		switch sig {
		case syscall.SIGUSR1:
			d.logStatus("status")
			continue
		case syscall.SIGHUP:
			d.reload("SIGHUP") // logs what it did, or why not
			continue
		}
		d.log.Info("fwpair: shutting down", "signal", sig.String())
		d.notifyStopping()
		d.close()
		return
	}
}

// logStatus writes the status to the log as one JSON attribute. Its
// message, "status", has no "fwpair:" prefix: monitoring (and the chaos
// soak) picks the line by "msg=status".
func (d *daemon) logStatus(msg string) {
	b, err := json.Marshal(d.status())
	if err != nil {
		d.log.Warn(msg, "err", err)
		return
	}
	d.log.Info(msg, "status", json.RawMessage(b))
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// requestReload asks the running daemon to reload and prints the changes
// it applied: exit status 0 when all were applied, 1 when the daemon
// refused the new file (it runs on the old one) or a change failed.
func requestReload(sock string, stdout, stderr io.Writer) int {
	r, err := Request(sock, reqReload, time.Minute)
	if r != nil {
		for _, c := range r.Changes {
			fmt.Fprintln(stdout, c)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// requestMaintenance switches the maintenance mode of the running daemon,
// or, when none answers on its control socket, records it for the next
// start. It prints the mode.
func requestMaintenance(cfg *Config, sock string, on bool, stdout, stderr io.Writer) int {
	req := reqMaintenanceOff
	if on {
		req = reqMaintenanceOn
	}
	r, err := Request(sock, req, 10*time.Second)
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) { // not running
		m := Maintenance{On: on}
		if on {
			m.Since = time.Now()
		}
		if werr := writeMaintenance(cfg.maintenancePath(), m); werr != nil {
			fmt.Fprintf(stderr, "%v\n%v\n", err, werr)
			return 1
		}
		fmt.Fprintf(stdout, "maintenance %s (fwpair not running: recorded in %s for its next start)\n", onOff(on), cfg.maintenancePath())
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "maintenance %s\n", onOff(r.Maintenance != nil && r.Maintenance.On))
	return 0
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
