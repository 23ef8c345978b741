package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"
)

// demoteSource is the carp.Group demotion source fed by --demote-file.
const demoteSource = "file"

// demotePoll is how often --demote-file is read.
const demotePoll = time.Second

// demoteFile feeds health into CARP demotion: the file holds one integer,
// 0-255, and the group's demotion source "file" follows it (0 clears it).
// A health check (a cron job, a systemd timer, a monitoring agent) writes
// the file; OpenBSD's `ifconfig -g carp carpdemote N` is the model.
//
// The file is read every second rather than watched with inotify or
// polled by mtime: reading a few bytes costs about what a stat does, works
// for every way of writing the file (in place, rename over, a symlink
// switched), and cannot miss a rewrite that lands within the filesystem's
// mtime granularity. A change takes at most a second to be seen.
//
// An absent file means 0 (nothing to report is healthy: deleting the file
// undoes a demotion). A file that does not hold an integer 0-255 is logged
// once and ignored: the last good value stays, so a half-written file
// never flaps the group.
type demoteFile struct {
	path  string
	every time.Duration
	set   func(n int)
	log   *slog.Logger

	last    int
	lastErr string
	reread  chan chan struct{} // Reread's requests to the loop
	stop    chan struct{}
	done    chan struct{}
}

// startDemoteFile reads path once, calls set with the value (so the
// demotion is in place before the group starts), and then re-reads it
// every period on its own goroutine until Close.
func startDemoteFile(path string, every time.Duration, set func(int), log *slog.Logger) *demoteFile {
	d := &demoteFile{path: path, every: every, set: set, log: log, last: -1,
		reread: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	d.poll()
	go d.loop()
	return d
}

func (d *demoteFile) loop() {
	defer close(d.done)
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.poll()
		case reply := <-d.reread:
			d.poll()
			close(reply)
		}
	}
}

// Reread reads the file now (SIGHUP) instead of at the next poll, and
// returns once a changed value has been applied. The read happens on the
// polling goroutine, so reads never overlap. After Close it does nothing.
func (d *demoteFile) Reread() {
	reply := make(chan struct{})
	select {
	case d.reread <- reply:
		<-reply
	case <-d.done:
	}
}

// poll reads the file and applies a changed value.
func (d *demoteFile) poll() {
	n, err := readDemotion(d.path)
	if err != nil {
		if err.Error() != d.lastErr {
			d.log.Warn("carpd: ignoring demote file", "path", d.path, "err", err, "demotion", max(d.last, 0))
			d.lastErr = err.Error()
		}
		return
	}
	d.lastErr = ""
	if n == d.last {
		return
	}
	d.log.Info("carpd: demotion from file", "path", d.path, "demotion", n)
	d.last = n
	d.set(n)
}

// Close stops the polling goroutine and waits for it. It leaves the
// group's demotion as it is.
func (d *demoteFile) Close() {
	close(d.stop)
	<-d.done
}

// maxDemoteBytes bounds what is read of the demote file: "255\n" and
// some white space fit; anything longer is not a demotion, and reading it
// whole would let a stray large file (or a sparse one of any size) cost
// memory on every poll.
const maxDemoteBytes = 16

// readDemotion returns the integer in the file at path: 0 if the file does
// not exist, an error if it does not hold one integer 0-255 (surrounding
// white space allowed).
//
// Only a regular file is read, and at most maxDemoteBytes+1 bytes of it: a
// FIFO would block the poll (and with it shutdown, which waits for the
// poll), and a device or a huge file is not a health report. The type is
// checked before opening, so a FIFO or a device is never opened, and again
// on the open file, in case the path was replaced in between; the open is
// non-blocking as a last guard. Errors quote at most maxDemoteBytes of the
// content.
func readDemotion(path string) (int, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, notRegular(fi.Mode())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, notRegular(fi.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxDemoteBytes+1))
	if err != nil {
		return 0, err
	}
	if len(b) > maxDemoteBytes {
		return 0, fmt.Errorf("content %q...: longer than %d bytes; want an integer 0-255", b[:maxDemoteBytes], maxDemoteBytes)
	}
	s := string(bytes.TrimSpace(b))
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("content %q: want an integer 0-255", s)
	}
	return n, nil
}

// notRegular is readDemotion's error for a path that is not a regular
// file.
func notRegular(m fs.FileMode) error {
	kind := "not a regular file"
	switch {
	case m.IsDir():
		kind = "a directory"
	case m&fs.ModeNamedPipe != 0:
		kind = "a FIFO"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	case m&fs.ModeDevice != 0:
		kind = "a device"
	}
	return fmt.Errorf("%s, want a regular file holding an integer 0-255", kind)
}
