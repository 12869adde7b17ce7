package app

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/qgasock"
	"guestagent.io/operator/agentd/virt"
)

type pressed struct{ calls []string }

func (p *pressed) ACPIShutdown(_ context.Context, uuid string) error {
	p.calls = append(p.calls, "shutdown "+uuid)
	return nil
}

func (p *pressed) ACPIReboot(_ context.Context, uuid string) error {
	p.calls = append(p.calls, "reboot "+uuid)
	return nil
}

func (p *pressed) Destroy(_ context.Context, uuid string) error {
	p.calls = append(p.calls, "destroy "+uuid)
	return nil
}

func (p *pressed) Reset(_ context.Context, uuid string) error {
	p.calls = append(p.calls, "reset "+uuid)
	return nil
}

func TestLibvirtOnlyRefusesSocketDomains(t *testing.T) {
	w := virt.NewFake(virt.Domain{UUID: "lv", Name: "lv"}, virt.Domain{UUID: "sk", Name: "sock-vm", QGASocket: "/run/qga/sock-vm.sock"})
	next := &pressed{}
	b := LibvirtOnly{Watcher: w, Next: next}
	ctx := context.Background()
	if err := b.ACPIShutdown(ctx, "lv"); err != nil {
		t.Fatal(err)
	}
	err := b.ACPIReboot(ctx, "sk")
	if err == nil || !strings.Contains(err.Error(), "ACPI reboot needs libvirt, and domain sock-vm is not run by libvirt") ||
		!strings.Contains(err.Error(), "/run/qga/sock-vm.sock") {
		t.Errorf("socket domain: %v", err)
	}
	for name, f := range map[string]func(context.Context, string) error{"Destroy": b.Destroy, "Reset": b.Reset} {
		if err := f(ctx, "sk"); err == nil || !strings.Contains(err.Error(), name+" needs libvirt") {
			t.Errorf("%s of a socket domain: %v", name, err)
		}
	}
	if err := b.Destroy(ctx, "lv"); err != nil {
		t.Fatal(err)
	}
	if len(next.calls) != 2 || next.calls[0] != "shutdown lv" || next.calls[1] != "destroy lv" {
		t.Errorf("libvirt calls %v", next.calls)
	}
	// sockets-only: no libvirt at all
	err = LibvirtOnly{Watcher: w}.ACPIShutdown(ctx, "lv")
	if err == nil || !strings.Contains(err.Error(), "libvirt, which is disabled on this node") {
		t.Errorf("libvirt disabled: %v", err)
	}
}

func TestNewNodeDepsSocketsOnly(t *testing.T) {
	cfg := config.Default()
	cfg.NodeName = "n"
	cfg.LibvirtURI = ""
	cfg.QGASockets.Directory = t.TempDir()
	deps, closeFn, err := NewNodeDeps(cfg, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if _, ok := deps.Watcher.(*qgasock.Source); !ok {
		t.Errorf("watcher %T, want *qgasock.Source", deps.Watcher)
	}
	if deps.QGA == nil || deps.PowerButton == nil {
		t.Errorf("deps %+v", deps)
	}
	cfg.QGASockets = config.QGASockets{}
	if _, _, err := NewNodeDeps(cfg, logr.Discard()); err == nil || !strings.Contains(err.Error(), "no domain source") {
		t.Errorf("no source: %v", err)
	}
}
