package publish

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// BenchmarkUnchangedDecision measures the whole per-domain decision for an unchanged guest: build
// the desired status from the Desired and compare it with the last applied one (no API call).
func BenchmarkUnchangedDecision(b *testing.B) {
	p, err := New(Options{NodeName: "bench", DefaultNamespace: "default", Client: &countingClient{}})
	if err != nil {
		b.Fatal(err)
	}
	p.owner = &ownerRef{name: "bench", uid: types.UID("uid")}
	d := sampleDesired("0123abcd-0000-4000-8000-000000000000", "bench-vm")
	e := &entry{uuid: d.Domain.UUID, desired: &d, state: stOwned, domainName: d.Domain.Name,
		ns: "default", name: ObjectName(d.Domain.Name, d.Domain.UUID)}
	e.applied = p.build.build(&d, nil, statusTime(p.opts.Clock()))
	e.applied = p.build.build(&d, e.applied, statusTime(p.opts.Clock())) // merged history as read back
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.sync(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	if p.stats.writes.Load() != 0 {
		b.Fatalf("unchanged decision wrote %d times", p.stats.writes.Load())
	}
}
