package track

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// FaultDemotion is the demotion a failed tracker with Weight 0 sets: the
// cap of carp's demote counter (Group.SetDemotion sums its sources and caps
// the sum at 255). A group with it loses the election to any peer that is
// less demoted, at once and whatever the peer's Preempt, which is how a
// tracker forces a group out of MASTER (keepalived's FAULT). It is not a
// new state: the group stays in BACKUP and would still take over if no
// healthier peer advertised, so a pair whose nodes both fail keeps serving.
const FaultDemotion = 255

// SourcePrefix is prepended to Config.Name to name the demotion source a
// tracker sets, so a tracker cannot overwrite carp's own sources ("link",
// "senderr", "follow").
const SourcePrefix = "track:"

// Defaults for the zero values of Config.
const (
	DefaultInterval = time.Second
	MinInterval     = 10 * time.Millisecond
	MaxCount        = 1000 // the largest Rise and Fall
)

// Demoter receives a tracker's demotion: carp.Group and carp.FollowGroup
// have this method. n <= 0 clears the source. SetDemotion must not block
// for long; it is called from the tracker's goroutine and from Close.
type Demoter interface {
	SetDemotion(source string, n int)
}

// A Check probes one thing once. It returns nil when the thing is healthy
// and an error saying why not otherwise. It must return soon after ctx is
// done (the tracker's Timeout, or Close): a check that ignores ctx delays
// Close by as much as it runs over.
type Check interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to Check.
type CheckFunc func(ctx context.Context) error

// Check calls f(ctx).
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// Config configures a Tracker. The zero value of each field but Name is
// usable, with the meaning given on the field.
type Config struct {
	// Name names the tracker in logs and in the demotion source
	// (SourcePrefix + Name). Required; two trackers feeding the same
	// Demoter need different names, or they overwrite each other.
	Name string

	// Interval is the time from the end of one check to the start of the
	// next. Zero means DefaultInterval (1 s, keepalived's default);
	// otherwise at least MinInterval.
	Interval time.Duration

	// Timeout bounds one check: a check still running after it counts as
	// failed (a script's process group is killed). Zero means Interval.
	Timeout time.Duration

	// Rise is how many consecutive successes turn a failed tracker
	// healthy, and Fall how many consecutive failures turn a healthy one
	// failed (keepalived's rise and fall). Zero means 1; at most MaxCount.
	// The first result after Start sets the state at once: a node that
	// starts with a broken service does not hold its groups for Fall
	// intervals first.
	Rise, Fall int

	// Weight is the demotion set while the tracker is failed, 1-255 units
	// of carp's demote counter (each unit lowers the priority by
	// carp.Config.DemotionWeight with VRRP). Zero means FaultDemotion: the
	// group is forced out of MASTER whatever the peer's demotion, short of
	// the peer also being at the cap.
	Weight int

	// Logger receives a line per state change (nil discards). The tracker
	// adds the key "track" with Name.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		return c, errors.New("track: Config.Name empty, want a name for the demotion source")
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < MinInterval {
		return c, fmt.Errorf("track: Config.Interval %v out of range (0 or at least %v)", c.Interval, MinInterval)
	}
	if c.Timeout == 0 {
		c.Timeout = c.Interval
	}
	if c.Timeout < 0 {
		return c, fmt.Errorf("track: Config.Timeout %v out of range (0 or positive)", c.Timeout)
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"Rise", &c.Rise}, {"Fall", &c.Fall}} {
		if *f.v == 0 {
			*f.v = 1
		}
		if *f.v < 1 || *f.v > MaxCount {
			return c, fmt.Errorf("track: Config.%s %d out of range 0-%d (0 means 1)", f.name, *f.v, MaxCount)
		}
	}
	if c.Weight < 0 || c.Weight > 255 {
		return c, fmt.Errorf("track: Config.Weight %d out of range 0-255 (0 means fault)", c.Weight)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Status is a snapshot of a Tracker.
type Status struct {
	Name     string
	Known    bool   // a check has completed since Start
	Healthy  bool   // the state after hysteresis (true until Known)
	Demotion int    // what the tracker contributes now (0 while healthy)
	Streak   int    // consecutive results against the current state
	Checks   uint64 // completed checks
	LastErr  error  // the last check's error, nil after a success
}

// Tracker runs a Check every Interval and feeds the result, after rise/fall
// hysteresis, into a Demoter as the demotion source SourcePrefix+Name.
// Build it with New, run it with Start, stop it with Close. Close clears
// the demotion, so a tracker that is removed never leaves its group
// demoted.
type Tracker struct {
	cfg    Config
	check  Check
	d      Demoter
	source string

	mu      sync.Mutex
	st      Status
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New validates cfg and returns a stopped Tracker of check feeding d.
func New(check Check, d Demoter, cfg *Config) (*Tracker, error) {
	if check == nil {
		return nil, errors.New("track: nil Check")
	}
	if d == nil {
		return nil, errors.New("track: nil Demoter")
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	c.Logger = c.Logger.With("track", c.Name)
	return &Tracker{
		cfg: c, check: check, d: d, source: SourcePrefix + c.Name,
		st: Status{Name: c.Name, Healthy: true},
	}, nil
}

// ErrClosed is returned by Start on a closed Tracker.
var ErrClosed = errors.New("track: tracker closed")

// Source returns the demotion source the tracker sets.
func (t *Tracker) Source() string { return t.source }

// Start starts the tracker's goroutine; the first check runs at once.
// Starting twice is an error.
func (t *Tracker) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if t.started {
		return errors.New("track: tracker already started")
	}
	t.started = true
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.done = make(chan struct{})
	go t.run(ctx)
	return nil
}

// Close stops the tracker, waits for its goroutine (a running check is
// cancelled and waited for) and clears its demotion. It is idempotent.
func (t *Tracker) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cancel, done := t.cancel, t.done
	t.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	// After the goroutine is gone nothing can raise the source again.
	t.mu.Lock()
	t.st.Demotion = 0
	t.mu.Unlock()
	t.d.SetDemotion(t.source, 0)
	return nil
}

// Status returns a snapshot of the tracker.
func (t *Tracker) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

func (t *Tracker) run(ctx context.Context) {
	defer close(t.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
		err := t.check.Check(cctx)
		if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("track: check timed out after %v: %w", t.cfg.Timeout, err)
		}
		cancel()
		if ctx.Err() != nil {
			return // cancelled by Close: not a result
		}
		t.report(err)
		timer.Reset(t.cfg.Interval)
	}
}

// report applies one result: the first sets the state, later ones flip it
// after Rise or Fall in a row.
func (t *Tracker) report(err error) {
	ok := err == nil
	t.mu.Lock()
	st := &t.st
	st.Checks++
	st.LastErr = err
	flip := false
	switch {
	case !st.Known:
		st.Known = true
		flip = true
	case ok == st.Healthy:
		st.Streak = 0
	default:
		st.Streak++
		need := t.cfg.Rise
		if st.Healthy {
			need = t.cfg.Fall
		}
		flip = st.Streak >= need
	}
	if !flip {
		t.mu.Unlock()
		if !ok {
			t.cfg.Logger.Debug("track: check failed", "error", err)
		}
		return
	}
	changed := st.Healthy != ok || !ok // first result failed is a change too
	st.Healthy, st.Streak = ok, 0
	n := 0
	if !ok {
		n = t.cfg.Weight
		if n == 0 {
			n = FaultDemotion
		}
	}
	st.Demotion = n
	// SetDemotion under mu: Close clears only after the goroutine has
	// exited, so the order of calls is the order of states.
	t.d.SetDemotion(t.source, n)
	t.mu.Unlock()
	if !changed {
		return
	}
	if ok {
		t.cfg.Logger.Info("track: healthy", "demotion", 0)
	} else {
		t.cfg.Logger.Warn("track: failed", "demotion", n, "error", err)
	}
}
