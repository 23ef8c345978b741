package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"slices"
	"strings"
)

// logFlags are carpd's logging flags, appended to flagTable after the
// VRRPv3 ones.
var logFlags = []flagSpec{
	{0, "log-format", "text|json", "log lines as key=value text (default) or as JSON objects", func(o *options, v string) error {
		if v != "text" && v != "json" {
			return errors.New("out of range (text, json)")
		}
		o.LogFormat = v
		return nil
	}},
}

// errDaemonize refuses ucarp's -B: forking away from the service manager
// would hide carpd's exit status and the notify protocol; systemd (or any
// supervisor) keeps it in the background instead.
var errDaemonize = errors.New("is refused: carpd stays in the foreground; run it under a service manager (carpd@.service)")

// facilities are the syslog facilities -f accepts, by ucarp's names;
// "none" (ucarp's way to turn syslog off) logs to stderr.
var facilities = map[string]syslog.Priority{
	"auth": syslog.LOG_AUTH, "authpriv": syslog.LOG_AUTHPRIV, "cron": syslog.LOG_CRON,
	"daemon": syslog.LOG_DAEMON, "ftp": syslog.LOG_FTP, "kern": syslog.LOG_KERN,
	"lpr": syslog.LOG_LPR, "mail": syslog.LOG_MAIL, "news": syslog.LOG_NEWS,
	"syslog": syslog.LOG_SYSLOG, "user": syslog.LOG_USER, "uucp": syslog.LOG_UUCP,
	"local0": syslog.LOG_LOCAL0, "local1": syslog.LOG_LOCAL1, "local2": syslog.LOG_LOCAL2,
	"local3": syslog.LOG_LOCAL3, "local4": syslog.LOG_LOCAL4, "local5": syslog.LOG_LOCAL5,
	"local6": syslog.LOG_LOCAL6, "local7": syslog.LOG_LOCAL7,
}

// setFacility is -f's parser.
func setFacility(o *options, v string) error {
	v = strings.ToLower(v)
	if _, ok := facilities[v]; !ok && v != "none" {
		names := append(slices.Sorted(func(yield func(string) bool) {
			for k := range facilities {
				if !yield(k) {
					return
				}
			}
		}), "none")
		return fmt.Errorf("out of range (%s)", strings.Join(names, ", "))
	}
	o.Facility = v
	if v == "none" {
		o.Facility = ""
	}
	return nil
}

// newBaseLogger returns carpd's logger without attributes: on stderr, or
// with -f on the local syslog daemon (dial is syslog.New, a test's fake
// otherwise). close releases the syslog connection.
func newBaseLogger(o *options, stderr io.Writer, level slog.Level, dial func(syslog.Priority, string) (*syslog.Writer, error)) (_ *slog.Logger, close func() error, err error) {
	opts := &slog.HandlerOptions{Level: level}
	if o.Facility == "" {
		return slog.New(newHandler(stderr, o.LogFormat, opts)), func() error { return nil }, nil
	}
	w, err := dial(facilities[o.Facility]|syslog.LOG_INFO, "carpd")
	if err != nil {
		return nil, nil, fmt.Errorf("--facility %s: cannot reach syslog: %w", o.Facility, err)
	}
	// syslog stamps the time and the program itself.
	opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return slog.New(newSyslogHandler(w, o.LogFormat, opts)), w.Close, nil
}

func newHandler(w io.Writer, format string, opts *slog.HandlerOptions) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// syslogHandler sends each record to syslog at the severity of its level:
// one formatting handler per severity, each writing to the syslog call of
// that severity.
type syslogHandler struct {
	debug, info, warn, err slog.Handler
}

func newSyslogHandler(w *syslog.Writer, format string, opts *slog.HandlerOptions) *syslogHandler {
	return &syslogHandler{
		debug: newHandler(writerFunc(w.Debug), format, opts),
		info:  newHandler(writerFunc(w.Info), format, opts),
		warn:  newHandler(writerFunc(w.Warning), format, opts),
		err:   newHandler(writerFunc(w.Err), format, opts),
	}
}

func (h *syslogHandler) pick(l slog.Level) slog.Handler {
	switch {
	case l >= slog.LevelError:
		return h.err
	case l >= slog.LevelWarn:
		return h.warn
	case l >= slog.LevelInfo:
		return h.info
	}
	return h.debug
}

func (h *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.pick(l).Enabled(ctx, l)
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.pick(r.Level).Handle(ctx, r)
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &syslogHandler{h.debug.WithAttrs(as), h.info.WithAttrs(as), h.warn.WithAttrs(as), h.err.WithAttrs(as)}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{h.debug.WithGroup(name), h.info.WithGroup(name), h.warn.WithGroup(name), h.err.WithGroup(name)}
}

// writerFunc adapts a syslog.Writer method to io.Writer; the handlers
// write one whole line per record, which becomes one syslog message.
type writerFunc func(string) error

func (f writerFunc) Write(p []byte) (int, error) {
	if err := f(strings.TrimSuffix(string(p), "\n")); err != nil {
		return 0, err
	}
	return len(p), nil
}
