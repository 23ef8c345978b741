package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
)

// hangingManager is an address manager whose Add never returns until
// released, ignoring everything else: a VIP install stuck in the kernel.
type hangingManager struct {
	*viptest.AddrManager
	entered chan struct{} // closed when Add starts hanging
	release chan struct{}
	once    sync.Once
}

func (m *hangingManager) Add(p netip.Prefix) error {
	m.once.Do(func() { close(m.entered) })
	<-m.release
	return m.AddrManager.Add(p)
}

// TestShutdownBoundedWhenHookHangs: fwpair's shutdown finishes, with the
// bow-out advert sent first, when a MASTER's takeover hook never returns:
// the commit (which ignores its context, as a kernel call that never
// returns would), or the VIP install behind it. Fake time: the bound is
// exact, and a hang shows as a deadlock of the bubble.
func TestShutdownBoundedWhenHookHangs(t *testing.T) {
	for _, tt := range []struct {
		name     string
		hang     string // "commit" or "install"
		maxTaken time.Duration
	}{
		// The commit's context ends when the follower closes, and commit
		// returns then: nothing to wait for.
		{"commit", "commit", 0},
		// The follower waits for its install: the step gives up after
		// shutdownStep.
		{"install", "install", shutdownStep},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				testShutdownBounded(t, tt.hang, tt.maxTaken)
			})
		})
	}
}

func testShutdownBounded(t *testing.T, hang string, maxTaken time.Duration) {
	log := slog.New(slog.DiscardHandler)
	seg := carptest.NewSegment(1)
	port, peer := seg.Join(carp.IPv4), seg.Join(carp.IPv4)
	addr := netip.MustParseAddr("192.0.2.254")

	release := make(chan struct{})
	commitEntered := make(chan struct{})
	follow, err := carp.NewFollowGroup(&carp.FollowConfig{Hold: time.Second, MaxHold: time.Minute, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{log: log, follow: follow, takeoverSem: make(chan struct{}, 1)}
	d.prepare = func(context.Context) (int, error) {
		if hang == "commit" {
			close(commitEntered)
			<-release // ignores its context
		}
		return 0, nil
	}
	d.liberalize = func(context.Context) (int, error) { return 0, nil }
	mgr := &hangingManager{AddrManager: viptest.NewAddrManager(nil), entered: make(chan struct{}), release: release}
	var m vip.AddrManager = viptest.NewAddrManager(nil)
	if hang == "install" {
		m = mgr
	}

	g, err := carp.NewGroup(carp.Config{VHID: 1, Addrs: []netip.Addr{addr}, StartAsMaster: true,
		IfIndex: port.IfIndex(), Transport: port, Logger: log, OnTransition: d.onTransition})
	if err != nil {
		t.Fatal(err)
	}
	fol, err := vip.NewFollower(vip.Config{VHID: 1, Addrs: vip.Host(addr), Manager: m,
		Announcer: viptest.NewAnnouncer(nil), BeforeInstall: d.commit, BeforeInstallTimeout: time.Minute, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := fol.Start(); err != nil {
		t.Fatal(err)
	}
	d.groups = []*groupRun{{cfg: GroupConfig{Name: "lan", VHID: 1}, group: g, fol: fol}}
	if err := d.follow.Add(g); err != nil {
		t.Fatal(err)
	}

	// The peer's port records the adverts, in order.
	var (
		mu      sync.Mutex
		bowOuts int
	)
	observed := make(chan struct{})
	go func() {
		defer close(observed)
		for {
			p, err := peer.Receive()
			if err != nil {
				return
			}
			var adv carp.Advertisement
			if adv.UnmarshalBinary(p.Payload) == nil && adv.IsBowOut() {
				mu.Lock()
				bowOuts++
				mu.Unlock()
			}
		}
	}()

	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	switch hang {
	case "commit":
		<-commitEntered
	case "install":
		<-mgr.entered
	}
	synctest.Wait()

	start := time.Now()
	d.close()
	taken := time.Since(start)
	synctest.Wait() // the bow-out has reached the peer's port
	mu.Lock()
	n := bowOuts
	mu.Unlock()
	if n != 1 {
		t.Errorf("the peer saw %d bow-out adverts, want 1", n)
	}
	if taken > maxTaken {
		t.Errorf("shutdown took %v, want at most %v", taken, maxTaken)
	}

	// Let the abandoned work finish, so the bubble ends clean.
	close(release)
	peer.Close()
	<-observed
	synctest.Wait()
}

// TestCommitReturnsAtContextEnd: the takeover hook returns when its
// context ends even if the engine's or the backend's step does not, and a
// second takeover does not start a liberalize while an abandoned one still
// runs (it waits for it, within its own context).
func TestCommitReturnsAtContextEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		running, most := 0, 0
		d := &daemon{log: slog.New(slog.DiscardHandler), takeoverSem: make(chan struct{}, 1)}
		d.prepare = func(context.Context) (int, error) { return 3, nil }
		d.liberalize = func(context.Context) (int, error) {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			<-release // ignores its context
			mu.Lock()
			running--
			mu.Unlock()
			return 1, nil
		}
		tr := carp.Transition{VHID: 1, From: carp.Backup, To: carp.Master}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := d.commit(ctx, tr)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("commit with a liberalize that never returns = %v, want %v", err, context.DeadlineExceeded)
		}
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		err = d.commit(ctx, tr)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second commit while the first liberalize runs = %v, want %v", err, context.DeadlineExceeded)
		}
		close(release)
		synctest.Wait()
		if most != 1 {
			t.Errorf("%d liberalize calls ran at once, want 1", most)
		}
		// Once the abandoned one finished, a commit completes again.
		if err := d.commit(context.Background(), tr); err != nil {
			t.Errorf("commit after the release = %v", err)
		}
		var errs []bool
		for _, c := range d.commits {
			errs = append(errs, c.Err != "")
		}
		if want := []bool{true, true, false}; !slices.Equal(errs, want) {
			t.Errorf("commit errors recorded %v, want %v", errs, want)
		}
	})
}

// TestCloseAll: the closers run together; closeAll returns when they all
// have, or after its bound with the names of those still running.
func TestCloseAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck := make(chan struct{})
		boom := errors.New("boom")
		start := time.Now()
		errs, pending := closeAll(5*time.Second, []closer{
			{"quick", func() error { return nil }},
			{"slow", func() error { time.Sleep(3 * time.Second); return boom }},
			{"stuck", func() error { <-stuck; return nil }},
		})
		if taken := time.Since(start); taken != 5*time.Second {
			t.Errorf("closeAll returned after %v, want 5s", taken)
		}
		if len(errs) != 1 || !errors.Is(errs[0], boom) || errs[0].Error() != "slow: boom" {
			t.Errorf("errors %v, want [slow: boom]", errs)
		}
		if !slices.Equal(pending, []string{"stuck"}) {
			t.Errorf("pending %v, want [stuck]", pending)
		}
		close(stuck)

		start = time.Now()
		errs, pending = closeAll(5*time.Second, []closer{
			{"a", func() error { time.Sleep(time.Second); return nil }},
			{"b", func() error { time.Sleep(time.Second); return nil }},
		})
		if taken := time.Since(start); taken != time.Second || errs != nil || pending != nil {
			t.Errorf("closeAll = %v, %v after %v; want nothing after 1s (the closers run together)", errs, pending, taken)
		}
	})
}
