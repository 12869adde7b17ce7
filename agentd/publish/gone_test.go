package publish

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// TestObjectsListedAndDeleted: the watch's first listing misses an object deleted before the
// watch began: it is created again (create + status: 2 writes) while the listed one costs nothing;
// a deletion report naming another UID (our own earlier object, say) is ignored without a read.
func TestObjectsListedAndDeleted(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	c := newCounting()
	p := startPublisher(t, nodeA, c, quietLogger)
	kept, gone := sampleDesired(newUUID(), "vm-listed"), sampleDesired(newUUID(), "vm-deleted-early")
	mustUpsert(t, p, kept)
	mustUpsert(t, p, gone)
	settle(t, p)
	keptObj := getStatus(t, nsDefault, ObjectName(kept.Domain.Name, kept.Domain.UUID))
	goneObj := getStatus(t, nsDefault, ObjectName(gone.Domain.Name, gone.Domain.UUID))

	w, r := c.writes.Load(), c.reads.Load()
	p.ObjectDeleted(kept.Domain.UUID, types.UID("another-object"))
	settle(t, p)
	if c.writes.Load() != w || c.reads.Load() != r {
		t.Fatalf("a deletion of another object cost %d writes, %d reads", c.writes.Load()-w, c.reads.Load()-r)
	}

	if err := env.Client.Delete(ctx, goneObj); err != nil {
		t.Fatal(err)
	}
	if err := p.ObjectsListed(ctx, map[string]types.UID{kept.Domain.UUID: keptObj.UID}); err != nil {
		t.Fatal(err)
	}
	settle(t, p)
	again := getStatus(t, nsDefault, ObjectName(gone.Domain.Name, gone.Domain.UUID))
	if again.UID == goneObj.UID || again.Status.Hostname != gone.Info.Hostname.Name {
		t.Fatalf("not created again: uid %s (was %s), hostname %q", again.UID, goneObj.UID, again.Status.Hostname)
	}
	if got := c.writes.Load() - w; got != 2 {
		t.Errorf("%d writes, want 2 (create and status of the missing object)", got)
	}
	if getStatus(t, nsDefault, ObjectName(kept.Domain.Name, kept.Domain.UUID)).ResourceVersion != keptObj.ResourceVersion {
		t.Error("the listed object was written")
	}
}
