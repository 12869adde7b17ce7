// Package install tests how the operator is installed: the Helm chart (charts/guestagent-operator)
// and the kustomize tree (config/default) render objects that a real kube-apiserver accepts, the
// chart's copies of generated files (CRDs, RBAC rules) and of the Grafana dashboard do not drift
// from their sources, and the ValidatingAdmissionPolicy that binds agentd's writes to its own
// node (config/policy, and the chart's copy) allows and denies what it promises.
//
// The tests run bin/helm and bin/kustomize (`make helm kustomize` installs them) and start
// envtest's kube-apiserver + etcd (bin/k8s, `make envtest`). A missing tool is a failure, not a
// skip: these checks must run in CI.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/internal/testenv"
)

// env is the control plane shared by the tests of this package.
var env *testenv.Env

// root is the repository root.
var root = testenv.RepoRoot()

// chartDir is the Helm chart under test.
var chartDir = filepath.Join(root, "charts", "guestagent-operator")

// Polling bounds: admission policies take effect asynchronously (the API server's policy
// informer), so every assertion that depends on them polls until a deadline.
const (
	pollInterval = 100 * time.Millisecond
	pollTimeout  = 30 * time.Second
)

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

// tool returns the path of bin/<name>, failing the test with instructions when it is missing.
func tool(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make %s` first (%v)", p, name, err)
	}
	return p
}

// run runs a tool in the repository root and returns its standard output.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return stdout.Bytes()
}

// helmTemplate renders the chart as release "ga" in namespace ns with the given extra args.
func helmTemplate(t *testing.T, ns string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	all := append([]string{"template", "ga", chartDir, "--namespace", ns}, args...)
	return decodeAll(t, run(t, "helm", all...))
}

// decodeAll decodes a multi-document YAML stream into objects, skipping empty documents.
func decodeAll(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding rendered YAML: %v", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
}

// apply server-side applies u as field manager "install-test" (forcing ownership).
func apply(ctx context.Context, u *unstructured.Unstructured, opts ...client.ApplyOption) error {
	all := append([]client.ApplyOption{client.FieldOwner("install-test"), client.ForceOwnership}, opts...)
	return env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), all...)
}

// readFile reads a file relative to the repository root.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
