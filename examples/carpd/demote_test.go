package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"
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
