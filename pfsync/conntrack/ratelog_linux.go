package conntrack

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logEvery is the shortest interval between two logs of one kind of
// repeated failure. A full kernel table refuses every flow of a bulk or a
// takeover commit, a misconfigured peer sends thousands of records this
// node ignores, an overloaded event socket fails every read: one line per
// record would bury everything else in the log (and cost more than the
// failure itself). The counters in Stats count every occurrence.
const logEvery = 10 * time.Second

// logKind names a kind of repeated failure whose log is rate-limited.
type logKind uint8

const (
	logTableFull   logKind = iota // the kernel refused a create: table full
	logRefused                    // a peer's record refused (filter, loopback)
	logEventsLost                 // the event socket overran or failed
	logKernelDrops                // the kernel's own drop counters grew
	nLogKinds
)

// logLimiter lets one log of each kind through per logEvery and counts the
// ones it held back, which the next log reports as "suppressed". The zero
// value is ready to use. It reads time.Now, so testing/synctest drives it.
type logLimiter struct {
	mu    sync.Mutex
	next  [nLogKinds]time.Time // when the kind may log again
	quiet [nLogKinds]uint64    // held back since the kind's last log
}

// log writes msg with args at level unless a log of kind was written less
// than logEvery ago; the written line carries the number of logs held back
// since the previous one under the key "suppressed".
func (l *logLimiter) log(lg *slog.Logger, kind logKind, level slog.Level, msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	if now.Before(l.next[kind]) {
		l.quiet[kind]++
		l.mu.Unlock()
		return
	}
	n := l.quiet[kind]
	l.next[kind], l.quiet[kind] = now.Add(logEvery), 0
	l.mu.Unlock()
	lg.Log(context.Background(), level, msg, append(args, "suppressed", n)...)
}
