package app

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"

	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/memstats"
	"guestagent.io/operator/agentd/qga"
	"guestagent.io/operator/agentd/qgasock"
	"guestagent.io/operator/agentd/service"
	"guestagent.io/operator/agentd/virt"
)

// NewNodeDeps builds the node-side parts from the configuration: the domain sources (libvirt
// unless cfg.LibvirtURI is empty, the direct QGA sockets when cfg.QGASockets has any, joined by
// a virt.Union where libvirt wins a UUID conflict), the QEMU guest agent poller over the
// matching transport (LibvirtAPI, SocketAPI, or a qga.Route choosing per domain), libvirt's
// memory statistics of libvirt's domains, and the host power control, which refuses socket
// domains. close releases the agent connections; call it
// after agentd stopped. cmd/agentd and tests use it.
func NewNodeDeps(cfg config.Config, log logr.Logger) (deps Deps, closeFn func(), err error) {
	var (
		watchers []virt.Watcher
		libAPI   qga.DomainAPI
		sockAPI  *qga.SocketAPI
		button   service.PowerButton
		vcpus    service.DomainVCPUs
		saver    service.HostSave
		memory   service.HostMemory
	)
	closeFn = func() {}
	if cfg.LibvirtEnabled() {
		if err := virt.EnsureEventLoop(); err != nil {
			return Deps{}, closeFn, fmt.Errorf("starting the libvirt event loop: %w", err)
		}
		m := virt.NewManager(virt.Config{URI: cfg.LibvirtURI, Log: log.WithName("virt")})
		watchers = append(watchers, m)
		libAPI = qga.NewLibvirtAPI(m.LookupDomain)
		button = virt.PowerButton{M: m}
		vcpus = virt.DomainVCPUs{M: m}
		saver = virt.PowerButton{M: m}
		mem, err := memstats.New(memstats.Config{
			API:         m,
			Domains:     m.Domains, // libvirt's domains only: socket domains have no statistics
			Period:      cfg.Poll.MemoryStats.Duration,
			StatsPeriod: cfg.BalloonStatsPeriodSeconds,
			Workers:     cfg.Workers(),
			Log:         log.WithName("memstats"),
		})
		if err != nil {
			return Deps{}, closeFn, fmt.Errorf("creating the memory statistics poller: %w", err)
		}
		memory = mem
	}
	if cfg.QGASockets.Enabled() {
		sockAPI = qga.NewSocketAPI(nil)
		entries := make([]qgasock.Entry, 0, len(cfg.QGASockets.Domains))
		for _, d := range cfg.QGASockets.Domains {
			entries = append(entries, qgasock.Entry{Name: d.Name, UUID: d.UUID, Socket: d.Socket})
		}
		src, err := qgasock.New(qgasock.Config{
			Directory:    cfg.QGASockets.Directory,
			Domains:      entries,
			Interval:     cfg.QGASockets.Interval.Duration,
			ProbeTimeout: cfg.Poll.CallTimeout.Duration,
			Prober:       sockAPI,
			Log:          log.WithName("qgasock"),
		})
		if err != nil {
			return Deps{}, closeFn, err
		}
		sockAPI.Path = src.SocketPath
		closeFn = func() { _ = sockAPI.Close() }
		watchers = append(watchers, src)
	}
	var w virt.Watcher
	var api qga.DomainAPI
	switch {
	case len(watchers) == 0:
		return Deps{}, closeFn, fmt.Errorf("no domain source: libvirt is disabled and no QGA sockets are configured")
	case len(watchers) == 1 && libAPI != nil:
		w, api = watchers[0], libAPI
	case len(watchers) == 1:
		w, api = watchers[0], sockAPI
	default:
		u := virt.NewUnion(log.WithName("domains"), watchers...)
		w = u
		api = qga.Route(func(uuid string) qga.DomainAPI {
			if d, ok := u.Domain(uuid); ok && !d.Libvirt() {
				return sockAPI
			}
			return libAPI
		})
	}
	q, err := NewQGA(qga.Config{
		API:     qga.Instrument(api),
		Domains: w.Domains,
		Periods: qga.Periods{
			Caps:  cfg.Poll.Capabilities.Duration,
			Users: cfg.Poll.Users.Duration,
			Sys:   cfg.Poll.System.Duration,
			CPUs:  cfg.Poll.CPUs.Duration,
			Disks: cfg.Poll.Disks.Duration,
			Stats: qga.StatsPeriod(cfg.Poll.Stats.Duration),
		},
		BootWindow:      cfg.Poll.BootWindow.Duration,
		CallTimeout:     cfg.Poll.CallTimeout.Duration,
		FailureThrottle: cfg.Poll.FailureDelay.Duration,
		Workers:         cfg.Workers(),
		Log:             log.WithName("qga"),
	})
	if err != nil {
		return Deps{}, closeFn, fmt.Errorf("creating the QEMU guest agent poller: %w", err)
	}
	host := LibvirtOnly{Watcher: w, Next: button, Saver: saver}
	return Deps{Watcher: w, QGA: q, Memory: memory, PowerButton: host, Save: host, VCPUs: vcpus}, closeFn, nil
}

// LibvirtOnly guards the host-side actions that only libvirt can perform (ACPI power button,
// destroy, reset):
// it refuses, with a clear error, domains reached through a direct QGA socket and every domain
// when libvirt is disabled (Next nil); other domains go to Next.
type LibvirtOnly struct {
	Watcher virt.Watcher
	Next    service.PowerButton
	// Saver is libvirt's managed save (Hibernate); nil when libvirt is disabled.
	Saver service.HostSave
}

var (
	_ service.PowerButton = LibvirtOnly{}
	_ service.HostSave    = LibvirtOnly{}
)

// ACPIShutdown implements service.PowerButton.
func (l LibvirtOnly) ACPIShutdown(ctx context.Context, uuid string) error {
	if err := l.check(uuid, "ACPI shutdown"); err != nil {
		return err
	}
	return l.Next.ACPIShutdown(ctx, uuid)
}

// ACPIReboot implements service.PowerButton.
func (l LibvirtOnly) ACPIReboot(ctx context.Context, uuid string) error {
	if err := l.check(uuid, "ACPI reboot"); err != nil {
		return err
	}
	return l.Next.ACPIReboot(ctx, uuid)
}

// Destroy implements service.PowerButton.
func (l LibvirtOnly) Destroy(ctx context.Context, uuid string) error {
	if err := l.check(uuid, "Destroy"); err != nil {
		return err
	}
	return l.Next.Destroy(ctx, uuid)
}

// Reset implements service.PowerButton.
func (l LibvirtOnly) Reset(ctx context.Context, uuid string) error {
	if err := l.check(uuid, "Reset"); err != nil {
		return err
	}
	return l.Next.Reset(ctx, uuid)
}

// ManagedSave implements service.HostSave.
func (l LibvirtOnly) ManagedSave(ctx context.Context, uuid string) error {
	if err := l.checkSave(uuid, "Managed save"); err != nil {
		return err
	}
	return l.Saver.ManagedSave(ctx, uuid)
}

// HasManagedSaveImage implements service.HostSave.
func (l LibvirtOnly) HasManagedSaveImage(ctx context.Context, uuid string) (bool, error) {
	if err := l.checkSave(uuid, "A managed save image"); err != nil {
		return false, err
	}
	return l.Saver.HasManagedSaveImage(ctx, uuid)
}

func (l LibvirtOnly) checkSave(uuid, action string) error {
	if l.Saver == nil {
		return fmt.Errorf("%s needs libvirt, which is disabled on this node (libvirtURI is empty)", action)
	}
	return l.check(uuid, action)
}

func (l LibvirtOnly) check(uuid, action string) error {
	if d, ok := l.Watcher.Domain(uuid); ok && !d.Libvirt() {
		return fmt.Errorf("%s needs libvirt, and domain %s is not run by libvirt: agentd reaches it only through its QEMU guest agent socket %s",
			action, d.Name, d.QGASocket)
	}
	if l.Next == nil {
		return fmt.Errorf("%s needs libvirt, which is disabled on this node (libvirtURI is empty)", action)
	}
	return nil
}
