package virt

import (
	"testing"

	"libvirt.org/go/libvirt"

	"guestagent.io/operator/agentd/guest"
)

func TestParseDomainXML(t *testing.T) {
	const head = `<domain type='qemu'><name>d1</name><uuid>11111111-2222-3333-4444-555555555555</uuid>`
	cases := []struct {
		name      string
		doc       string
		hasQGA    bool
		hint      guest.ChannelState
		ogaPath   string
		ogaName   string
		placement Placement
	}{
		{"bare", head + `</domain>`, false, guest.ChannelUnknown, "", "", Placement{Publish: true}},
		{"qga connected + oga preferred over legacy", head + `<devices>
			<channel type='unix'><source mode='bind' path='/x/legacy.sock'/><target type='virtio' name='com.redhat.rhevm.vdsm'/></channel>
			<channel type='unix'><source mode='bind' path='/x/qga'/><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>
			<channel type='unix'><source mode='bind' path='/x/oga.sock'/><target type='virtio' name='ovirt-guest-agent.0'/></channel>
			</devices></domain>`, true, guest.ChannelConnected, "/x/oga.sock", OGAChannelName, Placement{Publish: true}},
		{"qga disconnected + legacy only", head + `<devices>
			<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='disconnected'/></channel>
			<channel type='unix'><source mode='bind' path='/x/legacy.sock'/><target type='virtio' name='com.redhat.rhevm.vdsm'/></channel>
			</devices></domain>`, true, guest.ChannelDisconnected, "/x/legacy.sock", OGALegacyChannelName, Placement{Publish: true}},
		{"qga without state, oga channel without path is not guessed", head + `<devices>
			<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
			<channel type='pty'><target type='virtio' name='ovirt-guest-agent.0'/></channel>
			</devices></domain>`, true, guest.ChannelUnknown, "", "", Placement{Publish: true}},
		{"placement namespace", head + `<metadata><other:x xmlns:other="urn:other" namespace="nope"/>
			<ga:placement xmlns:ga="http://guestagent.io/xmlns/libvirt/v1" namespace="tenant-a"/></metadata></domain>`,
			false, guest.ChannelUnknown, "", "", Placement{Namespace: "tenant-a", Publish: true}},
		{"placement opt-out", head + `<metadata><ga:placement xmlns:ga="http://guestagent.io/xmlns/libvirt/v1" publish="false"/></metadata></domain>`,
			false, guest.ChannelUnknown, "", "", Placement{Publish: false}},
		{"foreign placement element ignored", head + `<metadata><p:placement xmlns:p="urn:someone-else" publish="false"/></metadata></domain>`,
			false, guest.ChannelUnknown, "", "", Placement{Publish: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			xi, err := ParseDomainXML(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			if xi.Name != "d1" || xi.UUID != "11111111-2222-3333-4444-555555555555" {
				t.Errorf("identity = %q %q", xi.Name, xi.UUID)
			}
			if xi.HasQGAChannel != tc.hasQGA || xi.QGAChannelHint != tc.hint {
				t.Errorf("qga = %v %v, want %v %v", xi.HasQGAChannel, xi.QGAChannelHint, tc.hasQGA, tc.hint)
			}
			if xi.OGASocketPath != tc.ogaPath || xi.OGAChannelName != tc.ogaName {
				t.Errorf("oga = %q %q, want %q %q", xi.OGASocketPath, xi.OGAChannelName, tc.ogaPath, tc.ogaName)
			}
			if xi.Placement != tc.placement {
				t.Errorf("placement = %+v, want %+v", xi.Placement, tc.placement)
			}
		})
	}
	if _, err := ParseDomainXML("<domain"); err == nil {
		t.Error("malformed XML: want error")
	}
}

func TestParseDomainXMLBalloon(t *testing.T) {
	const head = `<domain type='qemu'><name>d1</name><uuid>11111111-2222-3333-4444-555555555555</uuid><devices>`
	for _, c := range []struct {
		name    string
		dev     string
		balloon bool
		period  int
	}{
		{"none", ``, false, 0},
		{"model none", `<memballoon model='none'/>`, false, 0},
		{"virtio without stats", `<memballoon model='virtio'/>`, true, 0},
		{"virtio with stats", `<memballoon model='virtio'><stats period='10'/></memballoon>`, true, 10},
		{"absurd period is capped", `<memballoon model='virtio'><stats period='4294967295'/></memballoon>`, true, 1 << 30},
	} {
		xi, err := ParseDomainXML(head + c.dev + `</devices></domain>`)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if xi.Balloon != c.balloon || xi.BalloonStatsPeriod != c.period {
			t.Errorf("%s: balloon %v period %d, want %v %d", c.name, xi.Balloon, xi.BalloonStatsPeriod, c.balloon, c.period)
		}
	}
}

func TestPlacementXMLRoundTrip(t *testing.T) {
	for _, p := range []Placement{{Namespace: "tenant-a", Publish: true}, {Publish: false}, {Namespace: `a"b`, Publish: false}} {
		doc := `<domain><name>x</name><metadata><ga:placement xmlns:ga="http://guestagent.io/xmlns/libvirt/v1"` +
			PlacementXML(p)[len("<placement"):] + `</metadata></domain>`
		xi, err := ParseDomainXML(doc)
		if err != nil {
			t.Fatal(err)
		}
		if xi.Placement != p {
			t.Errorf("round trip %+v -> %+v (%s)", p, xi.Placement, doc)
		}
	}
}

func TestStateReasonNames(t *testing.T) {
	for _, c := range []struct {
		s      libvirt.DomainState
		reason int
		want   string
	}{
		{libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_POSTCOPY_FAILED), "PostCopyFailed"},
		{libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_MIGRATED), "Migrated"},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_MIGRATION), "Migration"},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_IOERROR), "IOError"},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_CRASHED), "Crashed"},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_API_ERROR), "APIError"},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_DAEMON), "Daemon"},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_SAVED), "Saved"},
		{libvirt.DOMAIN_CRASHED, int(libvirt.DOMAIN_CRASHED_PANICKED), "Panicked"},
		{libvirt.DOMAIN_BLOCKED, 0, "Unknown"},
		{libvirt.DOMAIN_PAUSED, 99, "Unknown"},
		{libvirt.DOMAIN_PAUSED, -1, "Unknown"},
	} {
		if got := stateReason(c.s, c.reason); got != c.want {
			t.Errorf("stateReason(%d, %d) = %q, want %q", c.s, c.reason, got, c.want)
		}
	}
}
