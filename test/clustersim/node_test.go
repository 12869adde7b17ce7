package clustersim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	agentdconfig "guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/execute"
	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/publish"
	"guestagent.io/operator/agentd/service"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// simNode is agentd's Kubernetes side for one node: a manager with agentd's client limits and
// cache scope, the real publisher and executor, and simulated guests.
type simNode struct {
	name    string
	mgr     ctrl.Manager
	pub     *publish.Publisher
	domains []*simDomain
	rng     *rand.Rand
	changes atomic.Int64 // Upserts of changed data
}

type simDomain struct {
	uuid, name, object string
	d                  publish.Desired
}

// execRecorder is the in-memory GuestAgentService of every simulated node: it records when a
// domain's request arrives and answers at once.
type execRecorder struct {
	mu      sync.Mutex
	arrived map[string]chan time.Time // by domain UUID, registered by the command's creator
	other   int64
}

func newExecRecorder() *execRecorder { return &execRecorder{arrived: map[string]chan time.Time{}} }

// expect registers the next request for uuid; the channel receives its arrival time.
func (e *execRecorder) expect(uuid string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	e.mu.Lock()
	e.arrived[uuid] = ch
	e.mu.Unlock()
	return ch
}

func (e *execRecorder) forget(uuid string) {
	e.mu.Lock()
	delete(e.arrived, uuid)
	e.mu.Unlock()
}

func (e *execRecorder) Execute(_ context.Context, uuid string, _ service.Request) (service.Result, error) {
	now := time.Now()
	e.mu.Lock()
	ch, ok := e.arrived[uuid]
	delete(e.arrived, uuid)
	if !ok {
		e.other++
	}
	e.mu.Unlock()
	if ok {
		ch <- now
	}
	return service.Result{Agents: []gav1.AgentType{gav1.AgentQemu}, Message: "pong"}, nil
}

// WatchPower implements execute.Service: the simulation sends Ping commands only.
func (e *execRecorder) WatchPower(string) (*service.PowerWatch, bool) { return nil, false }

// HostPower implements execute.Service: the simulation has no host power control.
func (e *execRecorder) HostPower(context.Context, string, gav1.Action, gav1.PowerMethod) error {
	return service.ErrNoPowerButton
}

// startSimNode builds and starts the node's manager, publisher and executor and hands the
// publisher the initial data of its domains.
func startSimNode(ctx context.Context, base *rest.Config, scheme *runtime.Scheme, name, ns string, domains int,
	counter *requestCounter, exec *execRecorder, seed uint64) (*simNode, error) {
	cfg := agentdconfig.Default()
	restCfg := rest.CopyConfig(base)
	restCfg.QPS, restCfg.Burst = cfg.QPS, cfg.Burst
	restCfg.UserAgent = "guestagent-agentd/" + name
	restCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return counter.wrap(rt) })
	byObject := publish.CacheByObject(name)
	for obj, bo := range byObject {
		bo.Transform = cache.TransformStripManagedFields()
		byObject[obj] = bo
	}
	for obj, bo := range execute.CacheByObject(name) {
		byObject[obj] = bo
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: byObject},
		Controller:             crconfig.Controller{SkipNameValidation: ptr.To(true)},
		Logger:                 logr.Discard(),
	})
	if err != nil {
		return nil, err
	}
	pub, err := publish.New(publish.Options{
		NodeName:         name,
		DefaultNamespace: ns,
		Client:           mgr.GetClient(),
		APIReader:        mgr.GetAPIReader(),
		MinInterval:      cfg.PublishMinInterval.Duration,
		Events:           mgr.GetEventRecorder("agentd"),
	})
	if err != nil {
		return nil, err
	}
	ex := &execute.Executor{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), NodeName: name,
		InstanceID: name + "/sim", Service: exec, History: pub,
	}
	if err := ex.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := mgr.Add(runnable(pub.Run)); err != nil {
		return nil, err
	}
	if err := mgr.Add(runnable(func(ctx context.Context) error { return watchStatuses(ctx, mgr.GetCache(), pub) })); err != nil {
		return nil, err
	}
	n := &simNode{name: name, mgr: mgr, pub: pub, rng: rand.New(rand.NewPCG(seed, 7))}
	for i := range domains {
		uuid := fmt.Sprintf("%08x-0000-4000-8000-%012x", seed, i)
		dname := fmt.Sprintf("%s-vm%03d", name, i)
		sd := &simDomain{uuid: uuid, name: dname, object: publish.ObjectName(dname, uuid)}
		sd.d = realistic(n.rng, sd, i)
		n.domains = append(n.domains, sd)
	}
	go func() { _ = mgr.Start(ctx) }()
	for _, sd := range n.domains {
		if err := pub.Upsert(sd.d); err != nil {
			return nil, err
		}
	}
	return n, nil
}

type runnable func(ctx context.Context) error

func (r runnable) Start(ctx context.Context) error { return r(ctx) }
func (runnable) NeedLeaderElection() bool          { return false }

// watchStatuses tells the publisher about changes and deletions of this node's objects made by
// others, as agentd does (metadata-only watch).
func watchStatuses(ctx context.Context, c cache.Cache, pub *publish.Publisher) error {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gav1.GroupVersion.WithKind("GuestAgentStatus"))
	inf, err := c.GetInformer(ctx, obj)
	if err != nil {
		return err
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{UpdateFunc: func(_, o any) {
		if m, ok := o.(metav1.Object); ok {
			pub.ObjectChanged(m.GetLabels()[gav1.LabelDomainUUID], m.GetUID(), m.GetResourceVersion())
		}
	}, DeleteFunc: func(o any) {
		if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if m, ok := o.(metav1.Object); ok {
			pub.ObjectDeleted(m.GetLabels()[gav1.LabelDomainUUID], m.GetUID())
		}
	}})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// idle reports whether the publisher has written the latest data of every domain of the node.
func (n *simNode) idle() bool { return n.pub.Pending() == 0 }

// changeLoop changes perMinute randomly chosen domains a minute (Poisson arrivals) until ctx ends.
func (n *simNode) changeLoop(ctx context.Context, perMinute float64) {
	if perMinute <= 0 {
		return
	}
	for {
		wait := time.Duration(n.rng.ExpFloat64() / perMinute * float64(time.Minute))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		sd := n.domains[n.rng.IntN(len(n.domains))]
		change(n.rng, &sd.d)
		if err := n.pub.Upsert(sd.d); err == nil {
			n.changes.Add(1)
		}
	}
}

// change makes one change a running guest plausibly reports: a user logs in or out, a filesystem
// fills or is cleaned up, memory use moves, a package is upgraded, an address is renewed.
func change(rng *rand.Rand, d *publish.Desired) {
	info := d.Info
	switch rng.IntN(5) {
	case 0:
		if len(info.Users.List) > 1 {
			info.Users.List = info.Users.List[:1]
		} else {
			info.Users.List = append(info.Users.List, guest.User{Name: fmt.Sprintf("user%d", rng.IntN(50)), LoginTime: time.Now().Truncate(time.Second)})
		}
	case 1:
		fs := &info.Filesystems.List[rng.IntN(len(info.Filesystems.List))]
		fs.UsedBytes = fs.TotalBytes / 100 * uint64(10+rng.IntN(80))
	case 2:
		info.Memory.FreeBytes = info.Memory.TotalBytes / 100 * uint64(5+rng.IntN(80))
		info.Memory.UnusedBytes = info.Memory.FreeBytes / 2
	case 3:
		k := rng.IntN(len(info.Applications.List))
		info.Applications.List[k] = fmt.Sprintf("%s-%d.%d.%d", appNames[k%len(appNames)], rng.IntN(10), rng.IntN(30), rng.IntN(100))
	case 4:
		itf := &info.Network.Interfaces[1]
		itf.IPv4 = []string{fmt.Sprintf("10.%d.%d.%d/16", rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))}
	}
}

var appNames = []string{
	"bash", "coreutils", "openssh-server", "openssh-client", "systemd", "systemd-sysv", "udev", "dbus",
	"libc6", "libssl3", "openssl", "ca-certificates", "curl", "wget", "gnupg", "apt", "dpkg", "tzdata",
	"locales", "sudo", "vim-tiny", "nano", "less", "procps", "iproute2", "iputils-ping", "net-tools",
	"isc-dhcp-client", "rsyslog", "logrotate", "cron", "python3", "python3-apt", "perl-base", "grep",
	"sed", "gawk", "tar", "gzip", "xz-utils", "bzip2", "util-linux", "mount", "e2fsprogs", "lvm2",
	"qemu-guest-agent", "ovirt-guest-agent", "cloud-init", "chrony", "linux-image-6.1.0-28-amd64",
}

// realistic is the data of a Debian guest with both agents, as the demo's guests publish it:
// host name, OS, time zone, one user, three interfaces, four filesystems, disk mappings, vCPUs,
// memory, 50 applications, and a history of ten executed commands.
func realistic(rng *rand.Rand, sd *simDomain, i int) publish.Desired {
	const gib = 1 << 30
	login := time.Date(2026, 11, 30, 8, rng.IntN(60), 0, 0, time.UTC)
	apps := make([]string, len(appNames))
	for k, a := range appNames {
		apps[k] = fmt.Sprintf("%s-%d.%d.%d-%d", a, 1+rng.IntN(9), rng.IntN(30), rng.IntN(100), 1+rng.IntN(5))
	}
	fs := func(mp, dev string, totalGiB uint64) guest.Filesystem {
		return guest.Filesystem{Mountpoint: mp, Type: "ext4", TotalBytes: totalGiB * gib,
			UsedBytes: totalGiB * gib / 100 * uint64(10+rng.IntN(60)), HasUsage: true, Disks: []string{dev}}
	}
	mac := func(k int) string { return fmt.Sprintf("52:54:00:%02x:%02x:%02x", rng.IntN(256), i%256, k) }
	info := &guest.Info{
		Hostname: &guest.Hostname{Name: sd.name, FQDN: sd.name + ".prod.example.com"},
		OS: &guest.OS{Type: guest.OSTypeLinux, Name: "Debian GNU/Linux", ID: "debian", Version: "12 (bookworm)",
			VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)", Variant: "bookworm",
			KernelRelease: "6.1.0-28-amd64", KernelVersion: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)", Arch: "x86_64"},
		Timezone: &guest.Timezone{Zone: "Europe/Prague", OffsetMinutes: 60},
		Users:    &guest.Users{List: []guest.User{{Name: "admin", LoginTime: login}}},
		Network: &guest.Network{Interfaces: []guest.Interface{
			{Name: "lo", IPv4: []string{"127.0.0.1/8"}, IPv6: []string{"::1/128"}},
			{Name: "enp1s0", MAC: mac(1), IPv4: []string{fmt.Sprintf("10.%d.%d.%d/16", i%200, rng.IntN(256), 1+rng.IntN(254))},
				IPv6: []string{fmt.Sprintf("fe80::5054:ff:fe%02x:%04x/64", rng.IntN(256), rng.IntN(65536))}},
			{Name: "enp2s0", MAC: mac(2), IPv4: []string{fmt.Sprintf("192.168.%d.%d/24", rng.IntN(256), 1+rng.IntN(254))},
				IPv6: []string{fmt.Sprintf("fd00::%x:%x/64", rng.IntN(65536), rng.IntN(65536))}},
		}},
		Filesystems: &guest.Filesystems{List: []guest.Filesystem{
			fs("/", "/dev/vda1", 20), fs("/boot", "/dev/vda2", 1), fs("/var", "/dev/vdb1", 50), fs("/home", "/dev/vdc1", 100),
		}},
		Disks: &guest.Disks{Mappings: []guest.DiskMapping{
			{Serial: "os-" + sd.uuid[:8], Device: "/dev/vda"}, {Serial: "var-" + sd.uuid[:8], Device: "/dev/vdb"},
			{Serial: "home-" + sd.uuid[:8], Device: "/dev/vdc"},
		}},
		VCPUs:        &guest.VCPUs{Online: 2 + 2*rng.IntN(4)},
		Memory:       &guest.Memory{TotalBytes: 8 * gib, FreeBytes: 3 * gib, UnusedBytes: gib, SwapTotalBytes: gib},
		Applications: &guest.Applications{List: apps},
	}
	sources := map[guest.Group]gav1.DataSource{}
	for _, g := range []guest.Group{guest.GroupHostname, guest.GroupOS, guest.GroupTimezone, guest.GroupUsers,
		guest.GroupNetwork, guest.GroupFilesystems, guest.GroupDisks, guest.GroupVCPUs, guest.GroupMemory} {
		sources[g] = gav1.SourceQemu
	}
	sources[guest.GroupApplications] = gav1.SourceOvirt
	var history []gav1.ExecutedCommand
	for k := range 10 {
		history = append(history, gav1.ExecutedCommand{
			Key:    fmt.Sprintf("tenant-ops/%s-fsfreeze-%d/%016x", sd.name, k, rng.Uint64()),
			Action: gav1.ActionPing, Time: metav1.NewTime(login.Add(time.Duration(k) * time.Hour)),
		})
	}
	return publish.Desired{
		Domain:  publish.Domain{UUID: sd.uuid, Name: sd.name},
		Info:    info,
		Sources: sources,
		Agents: publish.AgentState{
			QGA: guest.QGAState{Present: true, Channel: guest.ChannelConnected, Version: "7.2.15", Responsive: true,
				Supported: []string{"guest-ping", "guest-info", "guest-get-host-name", "guest-get-osinfo", "guest-get-timezone",
					"guest-get-users", "guest-network-get-interfaces", "guest-get-fsinfo", "guest-get-disks", "guest-get-vcpus",
					"guest-get-memory-block-info", "guest-shutdown", "guest-fsfreeze-freeze", "guest-fsfreeze-thaw", "guest-set-time"}},
			OGA: guest.OGAState{Present: true, Channel: guest.ChannelConnected, Spoken: true, APIVersion: 3, Responsive: true},
		},
		RunState:         &publish.RunState{State: "Running", Reason: "Booted"},
		ExecutedCommands: history,
	}
}
