package publish

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

const (
	nsDefault = "gas-default"
	nsTenant  = "tenant-a"
	nodeA     = "node-a"
	nodeB     = "node-b"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() || fuzzing() {
		return m.Run() // unit tests, benchmarks and fuzz targets only; envtest tests skip themselves
	}
	e, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = e.Stop() }()
	env = e
	ctx := context.Background()
	for _, ns := range []string{nsDefault, nsTenant, "scale"} {
		if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	for _, n := range []string{nodeA, nodeB} {
		if err := e.Client.Create(ctx, testenv.Node(n)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// fuzzing reports whether this process runs a fuzz target (as coordinator or worker): the fuzz
// targets here need no apiserver, and each worker process would start its own.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

func needEnv(t testing.TB) {
	t.Helper()
	if env == nil {
		t.Skip("envtest not started (-short)")
	}
}

// countingClient counts the writes that reached the apiserver and can inject failures.
type countingClient struct {
	client.Client
	writes   atomic.Int64 // writes passed to the apiserver
	attempts atomic.Int64 // all write calls, including injected failures
	reads    atomic.Int64
	mu       sync.Mutex
	failN    int
	failWith error
	downErr  error // every read and write fails with it while set
}

// setDown makes every read and write fail with err until setDown(nil).
func (c *countingClient) setDown(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.downErr = err
}

func (c *countingClient) down() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.downErr
}

func newCounting() *countingClient { return &countingClient{Client: env.Client} }

// failNext makes the next n writes fail with err.
func (c *countingClient) failNext(n int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failN, c.failWith = n, err
}

func (c *countingClient) hit() error {
	c.attempts.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.downErr != nil {
		return c.downErr
	}
	if c.failN > 0 {
		c.failN--
		return c.failWith
	}
	c.writes.Add(1)
	return nil
}

func (c *countingClient) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	if err := c.hit(); err != nil {
		return err
	}
	return c.Client.Create(ctx, o, opts...)
}

func (c *countingClient) Update(ctx context.Context, o client.Object, opts ...client.UpdateOption) error {
	if err := c.hit(); err != nil {
		return err
	}
	return c.Client.Update(ctx, o, opts...)
}

func (c *countingClient) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.PatchOption) error {
	if err := c.hit(); err != nil {
		return err
	}
	return c.Client.Patch(ctx, o, p, opts...)
}

func (c *countingClient) Apply(ctx context.Context, o runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	if err := c.hit(); err != nil {
		return err
	}
	return c.Client.Apply(ctx, o, opts...)
}

func (c *countingClient) Delete(ctx context.Context, o client.Object, opts ...client.DeleteOption) error {
	if err := c.hit(); err != nil {
		return err
	}
	return c.Client.Delete(ctx, o, opts...)
}

func (c *countingClient) Get(ctx context.Context, k client.ObjectKey, o client.Object, opts ...client.GetOption) error {
	c.reads.Add(1)
	if err := c.down(); err != nil {
		return err
	}
	return c.Client.Get(ctx, k, o, opts...)
}

func (c *countingClient) List(ctx context.Context, l client.ObjectList, opts ...client.ListOption) error {
	c.reads.Add(1)
	if err := c.down(); err != nil {
		return err
	}
	return c.Client.List(ctx, l, opts...)
}

func (c *countingClient) Status() client.SubResourceWriter { return c.SubResource("status") }

func (c *countingClient) SubResource(sub string) client.SubResourceClient {
	return &countingSub{SubResourceClient: c.Client.SubResource(sub), c: c}
}

type countingSub struct {
	client.SubResourceClient
	c *countingClient
}

func (s *countingSub) Update(ctx context.Context, o client.Object, opts ...client.SubResourceUpdateOption) error {
	if err := s.c.hit(); err != nil {
		return err
	}
	return s.SubResourceClient.Update(ctx, o, opts...)
}

func (s *countingSub) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
	if err := s.c.hit(); err != nil {
		return err
	}
	return s.SubResourceClient.Patch(ctx, o, p, opts...)
}

func (s *countingSub) Apply(ctx context.Context, o runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	if err := s.c.hit(); err != nil {
		return err
	}
	return s.SubResourceClient.Apply(ctx, o, opts...)
}

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) at() metav1.Time         { return statusTime(c.now()) }
func (c *fakeClock) opt(o *Options)          { o.Clock = c.now }
func withMinInterval(d time.Duration) func(*Options) {
	return func(o *Options) { o.MinInterval = d }
}

// startPublisher runs a publisher for node with client c until the test ends.
func startPublisher(t *testing.T, node string, c *countingClient, mods ...func(*Options)) *Publisher {
	t.Helper()
	o := Options{
		NodeName: node, DefaultNamespace: nsDefault, Client: c, Logger: testr.NewWithOptions(t, testr.Options{Verbosity: 0}),
		MinInterval: 10 * time.Millisecond, WriteQPS: 1000, WriteBurst: 1000, RetryBaseDelay: 10 * time.Millisecond,
		RetryMaxDelay: 200 * time.Millisecond, StartupGrace: -1, // tests of the grace set it
	}
	for _, m := range mods {
		m(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	select {
	case <-p.seeded:
	case <-time.After(30 * time.Second):
		t.Fatal("publisher did not seed")
	}
	return p
}

// quietLogger keeps big tests readable.
func quietLogger(o *Options) { o.Logger = logr.Discard() }

// upsertWrites upserts d, waits until it is published and returns the writes that cost.
func upsertWrites(t *testing.T, p *Publisher, c *countingClient, d Desired) int64 {
	t.Helper()
	w := c.writes.Load()
	mustUpsert(t, p, d)
	settle(t, p)
	return c.writes.Load() - w
}

// settle waits until the publisher has published every Upsert/Remove.
func settle(t testing.TB, p *Publisher) {
	t.Helper()
	NewWithT(t).Eventually(p.Pending).WithTimeout(60*time.Second).WithPolling(5*time.Millisecond).
		Should(BeZero(), "domains the publisher has not published yet")
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// sampleDesired is a typical Linux guest with both agents.
func sampleDesired(uuid, name string) Desired {
	login := time.Date(2026, 1, 1, 8, 30, 15, 123456789, time.UTC)
	return Desired{
		Domain: Domain{UUID: uuid, Name: name},
		Info: &guest.Info{
			Hostname: &guest.Hostname{Name: "web1", FQDN: "web1.example.org"},
			OS: &guest.OS{Type: guest.OSTypeLinux, Name: "Debian GNU/Linux", ID: "debian", Version: "12 (bookworm)",
				VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)", KernelRelease: "6.1.0-56-amd64", Arch: "x86_64"},
			Timezone: &guest.Timezone{Zone: "Europe/Prague", OffsetMinutes: 60},
			Users:    &guest.Users{List: []guest.User{{Name: "root", LoginTime: login}}},
			Session:  &guest.Session{State: guest.SessionActive},
			Network: &guest.Network{Interfaces: []guest.Interface{
				{Name: "lo", IPv4: []string{"127.0.0.1/8"}, IPv6: []string{"::1/128"}},
				{Name: "eth0", MAC: "52:54:00:12:34:56", IPv4: []string{"169.254.1.1/16", "192.168.122.10/24"},
					IPv6: []string{"fe80::1/64", "2001:db8::10/64"}},
			}},
			Filesystems: &guest.Filesystems{List: []guest.Filesystem{
				{Mountpoint: "/", Type: "ext4", TotalBytes: 10 << 30, UsedBytes: 3 << 30, HasUsage: true, Disks: []string{"/dev/vda"}},
			}},
			Disks:        &guest.Disks{Mappings: []guest.DiskMapping{{Serial: "disk0", Device: "/dev/vda"}}},
			VCPUs:        &guest.VCPUs{Online: 2},
			Memory:       &guest.Memory{TotalBytes: 4 << 30, FreeBytes: 2 << 30, UnusedBytes: 1 << 30, SwapTotalBytes: 1 << 30},
			Applications: &guest.Applications{List: []string{"kernel-6.1", "qemu-guest-agent-7.2"}},
		},
		Sources: map[guest.Group]v1alpha1.DataSource{
			guest.GroupHostname: v1alpha1.SourceQemu, guest.GroupOS: v1alpha1.SourceQemu, guest.GroupTimezone: v1alpha1.SourceQemu,
			guest.GroupUsers: v1alpha1.SourceQemu, guest.GroupSession: v1alpha1.SourceOvirt, guest.GroupNetwork: v1alpha1.SourceQemu,
			guest.GroupFilesystems: v1alpha1.SourceQemu, guest.GroupDisks: v1alpha1.SourceQemu, guest.GroupVCPUs: v1alpha1.SourceQemu,
			guest.GroupMemory: v1alpha1.SourceOvirt, guest.GroupApplications: v1alpha1.SourceOvirt,
		},
		Agents: AgentState{
			QGA: guest.QGAState{Present: true, Channel: guest.ChannelConnected, Version: "7.2.0",
				Supported: []string{"guest-info", "guest-get-osinfo", "guest-ping"}, Responsive: true},
			OGA: guest.OGAState{Present: true, Channel: guest.ChannelConnected, Spoken: true, APIVersion: 3, Responsive: true},
		},
		ExecutedCommands: []v1alpha1.ExecutedCommand{
			{Key: "tenant-a/reboot-1/abcd", Action: "Reboot", Time: metav1.NewTime(login.Add(time.Hour))},
		},
	}
}

func getStatus(t testing.TB, ns, name string) *v1alpha1.GuestAgentStatus {
	t.Helper()
	var o v1alpha1.GuestAgentStatus
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &o); err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
	return &o
}

func exists(t testing.TB, ns, name string) bool {
	t.Helper()
	var o v1alpha1.GuestAgentStatus
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &o)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func mustUpsert(t testing.TB, p *Publisher, d Desired) {
	t.Helper()
	if err := p.Upsert(d); err != nil {
		t.Fatal(err)
	}
}
