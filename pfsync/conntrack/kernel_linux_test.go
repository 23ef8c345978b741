package conntrack

import (
	"errors"
	"testing"

	"github.com/gocarp/gocarp/internal/lab/netns"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// TestCreateBatchResults checks that a pipelined batch, in which only the
// last request asks for an acknowledgement, still gives every request its
// own result: the kernel's error for each create that failed, success for
// the others — and, when the socket's receive buffer overran and error
// messages may have been dropped, no success that is not known (errNoAck:
// the caller writes those again one by one).
func TestCreateBatchResults(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	b := newBackend(t, Config{NetNS: fd})
	recs := benchRecords(commitBatch)
	flows := make([]ct.Flow, len(recs))
	fs := make([]*ct.Flow, len(recs))
	for i := range recs {
		f, err := recordToFlow(&recs[i])
		if err != nil {
			t.Fatal(err)
		}
		flows[i], fs[i] = f, &flows[i]
	}
	// Every other flow exists already: its create fails with EEXIST.
	for i := 0; i < len(fs); i += 2 {
		if err := b.inj.exec(fs[i], true); err != nil {
			t.Fatal(err)
		}
	}
	res := make([]error, len(fs))
	if err := b.inj.createBatch(fs, res); err != nil {
		t.Fatal(err)
	}
	for i, err := range res {
		want := errCreated
		if i%2 == 0 {
			want = unix.EEXIST
		}
		if !errors.Is(err, want) {
			t.Errorf("create %d: %v, want %v", i, err, want)
		}
	}

	// The same batch again through a receive buffer too small for its
	// error messages: every create fails, some errors are dropped, and
	// none of the requests may be taken for a success.
	if err := setReadBuffer(b.inj.c, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.inj.createBatch(fs, res); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for i, err := range res {
		switch {
		case errors.Is(err, errNoAck):
			lost++
		case !errors.Is(err, unix.EEXIST):
			t.Errorf("create %d of a flow in the kernel: %v, want EEXIST or errNoAck", i, err)
		}
	}
	if lost == 0 {
		t.Errorf("no answer lost with a minimal receive buffer: the test does not test the overrun")
	}
}
