package conntrack

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/google/go-cmp/cmp"
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

// TestCommitKnownRefused: the updates of entries the backend wrote before
// are pipelined in a commit; one the kernel refuses still ends as a single
// write would end it — an update that would clear ASSURED (EBUSY) keeps
// the kernel's status and takes the rest, an entry gone from the kernel
// (ENOENT) is created again — and the others are updated.
func TestCommitKnownRefused(t *testing.T) {
	netns.RequireBinary(t, "conntrack")
	tp := netns.New(t, "gck")
	n, fd := testNS(t, tp, "a")
	b := newBackend(t, Config{NetNS: fd})
	recs := benchRecords(10)
	for i := range recs {
		recs[i].Key.Reply.Dst = recs[i].Key.Orig.Src // no NAT: conntrack(8) names the flows by their original tuple
		recs[i].Flags = uint32(ct.StatusConfirmed | ct.StatusSeenReply)
	}
	if res, err := b.Commit(context.Background(), recs); err != nil || res.Created != len(recs) {
		t.Fatalf("first commit %+v: %v", res, err)
	}
	src := func(i int) string { return recs[i].Key.Orig.Src.Addr().String() }
	dst := recs[0].Key.Orig.Dst
	sel := func(i int) []string {
		return []string{"-p", "tcp", "-s", src(i), "-d", dst.Addr().String(),
			"--sport", fmt.Sprint(recs[i].Key.Orig.Src.Port()), "--dport", fmt.Sprint(dst.Port())}
	}
	n.Run("conntrack", append(append([]string{"-U"}, sel(3)...), "-u", "SEEN_REPLY,ASSURED")...)
	n.Run("conntrack", append([]string{"-D"}, sel(6)...)...)
	for i := range recs {
		recs[i].Version++
		recs[i].Expire = 200
	}
	res, err := b.Commit(context.Background(), recs)
	res.Duration = 0
	if diff := cmp.Diff(CommitResult{Masters: len(recs), Updated: len(recs) - 1, Created: 1}, res); err != nil || diff != "" {
		t.Fatalf("second commit: %v (-want +got):\n%s", err, diff)
	}
	flows := dumpNS(t, fd)
	for i := range recs {
		f, ok := findFlow(flows, recs[i].Key.Orig.Src)
		if !ok || f.Timeout > 200 || f.Timeout < 150 {
			t.Errorf("flow %d: found %v, timeout %d, want 150-200", i, ok, f.Timeout)
		}
		if ok && f.Status.Assured() != (i == 3) {
			t.Errorf("flow %d: ASSURED %v, want %v", i, f.Status.Assured(), i == 3)
		}
	}
	if s := b.Stats(); s.Recreated != 0 || s.InjectErrors != 0 {
		t.Errorf("stats %+v, want nothing recreated, no error", s)
	}
}
