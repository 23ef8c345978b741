//go:build !linux

package udp

// pinToOneCPU does nothing: the tests relying on it run on Linux only.
func pinToOneCPU() error { return nil }
