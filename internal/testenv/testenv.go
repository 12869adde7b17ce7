// Package testenv starts the real control plane for tests: kube-apiserver and etcd through
// controller-runtime's envtest, with this project's CRDs installed.
//
// The binaries are built from the Go module proxy by hack/envtest-assets.sh into
// bin/k8s/<version>; Start finds them through KUBEBUILDER_ASSETS or, failing that, in that
// directory (so tests also run from an IDE). A missing binary is a test failure, never a skip:
// tests that need the apiserver must run in CI.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	corev1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
}

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Scheme returns a scheme with the built-in types and this project's API.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := gav1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// AssetsDir returns the directory holding kube-apiserver and etcd, or an error saying how to get it.
func AssetsDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(RepoRoot(), "bin", "k8s", "*"))
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no envtest binaries: run hack/envtest-assets.sh (or make test) first")
}

// Start starts kube-apiserver and etcd with the CRDs from config/crd/bases installed.
func Start() (*Env, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	scheme := Scheme()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: dir,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Env: env, Config: cfg, Client: c, Scheme: scheme}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.Env.Stop() }

// WriteKubeconfig adds a cluster-admin user (system:masters) to the control plane and writes its
// kubeconfig to dir/kubeconfig, for binaries under test that run as their own processes.
func (e *Env) WriteKubeconfig(dir, user string) (string, error) {
	u, err := e.Env.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "kubeconfig")
	return p, os.WriteFile(p, kc, 0o600)
}

// NodeGVK is the GroupVersionKind of a core Node, handy for owner references in tests.
var NodeGVK = schema.GroupVersionKind{Version: "v1", Kind: "Node"}

// Node returns a Node object named name (create it with the Client).
func Node(name string) *corev1.Node {
	n := &corev1.Node{}
	n.Name = name
	return n
}

// CounterValue reads the counter name{labels} (labels may be a subset of the metric's) from
// controller-runtime's metrics registry, 0 if it has not been observed yet.
func CounterValue(name string, labels map[string]string) (float64, error) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return 0, fmt.Errorf("gathering metrics: %w", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range labels {
				match = match && have[k] == v
			}
			if match {
				return m.GetCounter().GetValue(), nil
			}
		}
	}
	return 0, nil
}
