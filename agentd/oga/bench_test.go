package oga

import (
	"bytes"
	"os"
	"runtime"
	"testing"

	"github.com/go-logr/logr"
)

// BenchmarkDecodeStream measures the whole receive path of one domain (framing, JSON decoding,
// XML-character filtering, dispatch, model updates, negotiation, under the agent's lock) on a
// realistic stream fed in 64 KiB chunks, like VDSM's recv loop. With OGA_STREAM_FILE set, it
// decodes that file instead (e.g. the reference stream of docs/benchmarks-oga.md, to compare with
// VDSM on the same bytes). Reported: msg/s, MB/s (via SetBytes) and allocs/msg.
func BenchmarkDecodeStream(b *testing.B) {
	var stream []byte
	if p := os.Getenv("OGA_STREAM_FILE"); p != "" {
		var err error
		if stream, err = os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	} else {
		stream = genStream(200000, 1)
	}
	msgs := bytes.Count(stream, []byte{'\n'})
	l := NewListener(ListenerOptions{Log: logr.Discard()})
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for range b.N {
		a := newAgent(l, "bench", "/nonexistent", 0)
		sp := newLineSplitter(MaxMessageSize)
		var d decoder
		for off := 0; off < len(stream); off += 64 << 10 {
			a.process(sp, &d, stream[off:min(off+64<<10, len(stream))])
		}
		if got := a.stats.Messages; got != uint64(msgs) {
			b.Fatalf("decoded %d of %d messages (dropped %d)", got, msgs, a.stats.DroppedLines)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(msgs)*float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(msgs*b.N), "allocs/msg")
}
