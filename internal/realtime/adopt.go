package realtime

import (
	"log/slog"
	"runtime"
)

// Adopt is what a daemon calls at start when it did not choose a
// real-time policy itself: if the service manager started it under one
// (CPUSchedulingPolicy=fifo or rr), GOMAXPROCS is lowered as FIFO lowers
// it and the fact is logged, with a warning on a single CPU; otherwise
// nothing happens. name prefixes the messages ("carpd", "fwpair").
func Adopt(log *slog.Logger, name string) {
	rt, err := Check()
	switch {
	case err != nil:
		log.Warn(name+": reading the scheduling policy failed", "err", err)
	case rt && runtime.NumCPU() < 2:
		log.Warn(name+": started under a real-time policy on a single CPU, where a Go process can stall itself", "err", ErrOneCPU)
	case rt:
		log.Info(name+": started under a real-time policy", "gomaxprocs", runtime.GOMAXPROCS(0))
	}
}
