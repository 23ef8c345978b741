package conntrack

import (
	"context"
	"log/slog"
	"time"

	"github.com/gocarp/gocarp/internal/ratelog"
)

// logEvery is the shortest interval between two logs of one kind of
// repeated failure. A full kernel table refuses every flow of a bulk or a
// takeover commit, a misconfigured peer sends thousands of records this
// node ignores, an overloaded event socket fails every read: one line per
// record would bury everything else in the log (and cost more than the
// failure itself). The counters in Stats count every occurrence.
const logEvery = ratelog.DefaultEvery

// logKind names a kind of repeated failure whose log is rate-limited.
type logKind uint8

const (
	logTableFull   logKind = iota // the kernel refused a create: table full
	logRefused                    // a peer's record refused (filter, loopback)
	logEventsLost                 // the event socket overran or failed
	logKernelDrops                // the kernel's own drop counters grew
	logLiberal                    // an own flow could not be set BE_LIBERAL
)

// logLimiter lets one log of each kind through per logEvery; the line
// carries the number held back since the previous one as "suppressed". The
// zero value is ready to use. It reads time.Now, so testing/synctest drives
// it.
type logLimiter struct {
	l ratelog.Limiter[logKind] // zero Every: ratelog.DefaultEvery, logEvery
}

// log writes msg with args at level unless a log of kind was written less
// than logEvery ago.
func (l *logLimiter) log(lg *slog.Logger, kind logKind, level slog.Level, msg string, args ...any) {
	if held, ok := l.l.Allow(kind, time.Now()); ok {
		lg.Log(context.Background(), level, msg, append(args, "suppressed", held)...)
	}
}
