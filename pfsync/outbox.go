package pfsync

// maxBatch bounds the frames the engine holds for one SendBatch call: 64
// frames of a 1,500-byte link keep 96 KB of buffers.
const maxBatch = 64

// outbox holds the sealed frames built between batchBegin and the
// matching batchEnd when the Transport is a BatchSender, and hands them
// to it in one call: the frames of one flush, of one run of the bulk token
// bucket, the retransmissions one ack asks for, everything one timer run
// or one received frame sends. Without a BatchSender, or outside those
// spans, every frame leaves at once with Send. Used under Engine.mu.
type outbox struct {
	bs     BatchSender // nil: frames leave one Send each
	depth  int         // nesting of batchBegin
	frames []Outgoing
	bufs   [][]byte // frames[i].Frame's buffer, kept for the next batch
}

// batchBegin starts a span in which frames wait in the outbox.
func (e *Engine) batchBegin() {
	if e.out.bs != nil {
		e.out.depth++
	}
}

// batchEnd ends a span; the outermost one sends what waits.
func (e *Engine) batchEnd() {
	if e.out.bs == nil {
		return
	}
	if e.out.depth--; e.out.depth == 0 {
		e.sendOutbox()
	}
}

// batching reports whether a frame sent now waits in the outbox.
func (e *Engine) batching() bool { return e.out.depth > 0 }

// outboxBuf returns the buffer the next frame of the outbox is sealed in.
func (e *Engine) outboxBuf() []byte {
	o := &e.out
	if i := len(o.frames); i < len(o.bufs) {
		return o.bufs[i][:0]
	}
	o.bufs = append(o.bufs, make([]byte, 0, e.tr.MTU()))
	return o.bufs[len(o.bufs)-1]
}

// queue adds a sealed frame, built in outboxBuf's buffer, to the outbox,
// and sends the outbox when it is full.
func (e *Engine) queue(to NodeID, frame []byte) {
	o := &e.out
	o.bufs[len(o.frames)] = frame[:0]
	o.frames = append(o.frames, Outgoing{To: to, Frame: frame})
	if len(o.frames) == maxBatch {
		e.sendOutbox()
	}
}

// sendOutbox hands the waiting frames to the Transport in one call and
// counts each as Send's result would be counted.
func (e *Engine) sendOutbox() {
	o := &e.out
	if len(o.frames) == 0 {
		return
	}
	o.bs.SendBatch(o.frames)
	for i := range o.frames {
		f := &o.frames[i]
		e.sent(f.To, len(f.Frame), f.Err)
		*f = Outgoing{}
	}
	o.frames = o.frames[:0]
}
