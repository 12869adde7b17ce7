package publish

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// TestObjectsListedAndDeleted: the watch's first listing misses an object deleted before the
// watch began: it is created again (create + status: 2 writes); an object edited before it began
// is listed at another version: its status is written back (1 write); the listed, unchanged one
// costs nothing; a deletion report naming another UID (our own earlier object, say) is ignored
// without a read.
func TestObjectsListedAndDeleted(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	c := newCounting()
	p := startPublisher(t, nodeA, c, quietLogger)
	kept, gone := sampleDesired(newUUID(), "vm-listed"), sampleDesired(newUUID(), "vm-deleted-early")
	edited := sampleDesired(newUUID(), "vm-edited-early")
	for _, d := range []Desired{kept, gone, edited} {
		mustUpsert(t, p, d)
	}
	settle(t, p)
	keptObj := getStatus(t, nsDefault, ObjectName(kept.Domain.Name, kept.Domain.UUID))
	goneObj := getStatus(t, nsDefault, ObjectName(gone.Domain.Name, gone.Domain.UUID))
	editedObj := getStatus(t, nsDefault, ObjectName(edited.Domain.Name, edited.Domain.UUID))

	w, r := c.writes.Load(), c.reads.Load()
	p.ObjectDeleted(kept.Domain.UUID, types.UID("another-object"))
	settle(t, p)
	if c.writes.Load() != w || c.reads.Load() != r {
		t.Fatalf("a deletion of another object cost %d writes, %d reads", c.writes.Load()-w, c.reads.Load()-r)
	}

	if err := env.Client.Delete(ctx, goneObj); err != nil {
		t.Fatal(err)
	}
	editedObj.Status.Hostname = "forged"
	if err := env.Client.Status().Update(ctx, editedObj); err != nil {
		t.Fatal(err)
	}
	if err := p.ObjectsListed(ctx, map[string]Listed{
		kept.Domain.UUID:   {UID: keptObj.UID, ResourceVersion: keptObj.ResourceVersion},
		edited.Domain.UUID: {UID: editedObj.UID, ResourceVersion: editedObj.ResourceVersion},
	}); err != nil {
		t.Fatal(err)
	}
	settle(t, p)
	if h := getStatus(t, nsDefault, ObjectName(edited.Domain.Name, edited.Domain.UUID)).Status.Hostname; h != edited.Info.Hostname.Name {
		t.Errorf("a status edited before the watch began was not restored: hostname %q", h)
	}
	again := getStatus(t, nsDefault, ObjectName(gone.Domain.Name, gone.Domain.UUID))
	if again.UID == goneObj.UID || again.Status.Hostname != gone.Info.Hostname.Name {
		t.Fatalf("not created again: uid %s (was %s), hostname %q", again.UID, goneObj.UID, again.Status.Hostname)
	}
	if got := c.writes.Load() - w; got != 3 {
		t.Errorf("%d writes, want 3 (create and status of the missing object, the edited status)", got)
	}
	if getStatus(t, nsDefault, ObjectName(kept.Domain.Name, kept.Domain.UUID)).ResourceVersion != keptObj.ResourceVersion {
		t.Error("the listed object was written")
	}
}
