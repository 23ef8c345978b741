package main

import (
	"os"
	"slices"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// TestAwaitClose: the shutdown waits for close, at most its bound (then
// carpd exits anyway); terminating signals meanwhile reach onSignal, the
// others do not. Fake time makes the bound exact.
func TestAwaitClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sigs := make(chan os.Signal, 4)
		var got []os.Signal
		onSignal := func(sig os.Signal) { got = append(got, sig) }

		start := time.Now()
		if !awaitClose(func() { time.Sleep(time.Second) }, 5*time.Second, sigs, onSignal) {
			t.Error("awaitClose = false for a close that returns within the bound")
		}
		if taken := time.Since(start); taken != time.Second {
			t.Errorf("awaitClose returned after %v, want 1s (when close returned)", taken)
		}

		hung := make(chan struct{})
		start = time.Now()
		if awaitClose(func() { <-hung }, 5*time.Second, sigs, onSignal) {
			t.Error("awaitClose = true for a close that never returns")
		}
		if taken := time.Since(start); taken != 5*time.Second {
			t.Errorf("awaitClose gave up after %v, want 5s", taken)
		}
		close(hung) // the abandoned close ends; its goroutine must not block
		synctest.Wait()

		release := make(chan struct{})
		sigs <- syscall.SIGUSR1
		sigs <- syscall.SIGTERM
		done := make(chan bool)
		go func() { done <- awaitClose(func() { <-release }, time.Hour, sigs, onSignal) }()
		synctest.Wait()
		if want := []os.Signal{syscall.SIGTERM}; !slices.Equal(got, want) {
			t.Errorf("onSignal got %v, want %v", got, want)
		}
		close(release)
		if !<-done {
			t.Error("awaitClose = false after close returned")
		}
	})
}
