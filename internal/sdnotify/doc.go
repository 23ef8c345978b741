// Package sdnotify tells the service manager about a daemon's life through
// systemd's notify protocol: READY once the daemon serves, STATUS lines as
// its state changes, STOPPING when it shuts down, and WATCHDOG pings while
// a liveness check passes. The datagrams go through
// github.com/coreos/go-systemd/v22/daemon; without NOTIFY_SOCKET (a start
// by hand, or Type=simple) every call is a no-op.
//
// Liveness is the daemon's to define: examples/carpd and examples/fwpair
// ping while each CARP group's protocol loop makes progress (Stall), not
// merely while the process exists, so a loop that hangs gets the service
// restarted after WatchdogSec.
package sdnotify
