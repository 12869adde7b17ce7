package virt

import (
	"testing"

	"github.com/go-logr/logr/testr"
)

func TestDeviceEventMapping(t *testing.T) {
	snap := Domain{UUID: "u1", Name: "vm1", State: StateRunning}
	ev, ok := deviceEvent(rawDeviceAdded, snap, true, "virtio-disk1")
	if !ok || ev.Type != EventDeviceChanged || ev.Lifecycle != LifecycleDeviceAdded || ev.Device != "virtio-disk1" || ev.Domain != snap {
		t.Errorf("added: %+v %v", ev, ok)
	}
	ev, ok = deviceEvent(rawDeviceRemoved, snap, true, "ua-disk2")
	if !ok || ev.Type != EventDeviceChanged || ev.Lifecycle != LifecycleDeviceRemoved || ev.Device != "ua-disk2" {
		t.Errorf("removed: %+v %v", ev, ok)
	}
	if _, ok := deviceEvent(rawDeviceAdded, Domain{}, false, "x"); ok {
		t.Error("an unknown domain's device event must not be handed on")
	}
	if _, ok := deviceEvent(rawReboot, snap, true, ""); ok {
		t.Error("not a device event")
	}
	if EventDeviceChanged.String() != "DeviceChanged" || LifecycleDeviceAdded.String() != "DeviceAdded" || LifecycleDeviceRemoved.String() != "DeviceRemoved" {
		t.Error("names")
	}
}

// TestDeviceEventsReachTheHandler: the raw callbacks' events go through handleRaw (which needs
// no connection for them) to the handler with the known snapshot.
func TestDeviceEventsReachTheHandler(t *testing.T) {
	m := NewManager(Config{URI: "test:///default", Log: testr.New(t)})
	snap := Domain{UUID: "u1", Name: "vm1", State: StateRunning}
	m.domains["u1"] = &entry{d: snap}
	var got []Event
	h := func(ev Event) { got = append(got, ev) }
	m.handleRaw(nil, rawEvent{kind: rawDeviceAdded, uuid: "u1", name: "vm1", alias: "virtio-disk1"}, h)
	m.handleRaw(nil, rawEvent{kind: rawDeviceRemoved, uuid: "u1", name: "vm1", alias: "virtio-disk1"}, h)
	m.handleRaw(nil, rawEvent{kind: rawDeviceAdded, uuid: "nope", alias: "virtio-disk1"}, h)
	if len(got) != 2 || got[0].Lifecycle != LifecycleDeviceAdded || got[1].Lifecycle != LifecycleDeviceRemoved || got[0].Domain != snap {
		t.Fatalf("events %+v", got)
	}
}
