//go:build !linux

package main

import "log/slog"

// setRealtime: real-time scheduling is Linux only.
func setRealtime(log *slog.Logger, prio int) {
	log.Warn("carpd: --realtime is Linux only; running at normal priority", "realtime", prio)
}
