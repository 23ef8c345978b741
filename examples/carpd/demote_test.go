package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReadDemotion(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string // nil: no file
		want    int
		wantErr bool
	}{
		{name: "absent means healthy", content: nil, want: 0},
		{name: "zero", content: ptr("0\n"), want: 0},
		{name: "value with white space", content: ptr("  42 \n"), want: 42},
		{name: "maximum", content: ptr("255"), want: 255},
		{name: "too large", content: ptr("256"), wantErr: true},
		{name: "negative", content: ptr("-1"), wantErr: true},
		{name: "empty (being written)", content: ptr(""), wantErr: true},
		{name: "garbage", content: ptr("down"), wantErr: true},
		{name: "two numbers", content: ptr("1 2"), wantErr: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "demote"+string(rune('a'+i)))
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := readDemotion(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("readDemotion = %d, %v; want error %v", got, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("readDemotion = %d, want %d", got, tt.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestReadDemotionBounded: a file far larger than a demotion (here a
// 512 MiB sparse file) is refused after reading a few bytes, with an error
// that quotes only a short prefix. The bound is checked through the
// allocations of the call, not its duration.
func TestReadDemotionBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demote")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("1" + strings.Repeat(" ", 20) + "2\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(512 << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := readDemotion(path)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatalf("readDemotion of a 512 MiB file = %d, nil; want an error", n)
	}
	if want := `content "1               "...: longer than 16 bytes; want an integer 0-255`; err.Error() != want {
		got := err.Error()
		t.Errorf("error %q (%d bytes), want %q", got[:min(len(got), 200)], len(got), want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
		t.Errorf("readDemotion allocated %d bytes for a 512 MiB file, want a bounded read (< 64 KiB)", alloc)
	}
}

// TestReadDemotionNotRegular: a FIFO, a directory or a device is an error,
// returned without reading: a FIFO with no writer would block the read
// (and the daemon's shutdown behind it) forever.
func TestReadDemotionNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path, want string }{
		{"FIFO", fifo, "a FIFO, want a regular file holding an integer 0-255"},
		{"directory", dir, "a directory, want a regular file holding an integer 0-255"},
		{"device", os.DevNull, "a device, want a regular file holding an integer 0-255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type result struct {
				n   int
				err error
			}
			res := make(chan result, 1)
			go func() {
				n, err := readDemotion(tt.path)
				res <- result{n, err}
			}()
			var r result
			select {
			case r = <-res:
			case <-time.After(10 * time.Second):
				// Only turns a hang into a failure: release a reader
				// blocked on the FIFO so the goroutine ends.
				if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
					w.Close()
				}
				t.Fatalf("readDemotion(%s) still blocked after 10s", tt.name)
			}
			if r.err == nil || r.err.Error() != tt.want {
				t.Errorf("readDemotion(%s) = %d, %v; want error %q", tt.name, r.n, r.err, tt.want)
			}
		})
	}
}

// TestDemoteFileFollowsFile: the demotion follows the file's changes,
// keeps the last good value while the file is invalid, and returns to 0
// when the file goes away. Fake time drives the poll.
func TestDemoteFileFollowsFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "demote")
		write := func(s string) {
			if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu  sync.Mutex
			got []int
		)
		write("10\n")
		d := startDemoteFile(path, time.Second, func(n int) {
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
		}, slog.New(slog.DiscardHandler))
		defer d.Close()

		step := func(content *string) {
			if content == nil {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			} else {
				write(*content)
			}
			time.Sleep(time.Second) // one poll period of fake time
			synctest.Wait()
		}
		step(ptr("10\n")) // unchanged: no call
		step(ptr("20"))   // change
		step(ptr("oops")) // invalid: keep 20
		step(ptr(""))     // half-written: keep 20
		step(ptr("0"))    // healthy again
		step(ptr("7"))    // and down again
		step(nil)         // file removed: 0
		step(ptr("7"))    // back
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff([]int{10, 20, 0, 7, 0, 7}, got); diff != "" {
			t.Errorf("demotions set (-want +got):\n%s", diff)
		}
	})
}

// TestDemoteFileReread: Reread (SIGHUP) applies a changed file before it
// returns, without waiting for the poll; after Close it returns at once.
// Fake time: no poll falls due during the test.
func TestDemoteFileReread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "demote")
		var (
			mu  sync.Mutex
			got []int
		)
		d := startDemoteFile(path, time.Hour, func(n int) {
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
		}, slog.New(slog.DiscardHandler))
		if err := os.WriteFile(path, []byte("42\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		d.Reread()
		mu.Lock()
		if diff := cmp.Diff([]int{0, 42}, got); diff != "" {
			t.Errorf("demotions set (-want +got):\n%s", diff)
		}
		mu.Unlock()
		d.Close()
		d.Reread() // must not block
	})
}
