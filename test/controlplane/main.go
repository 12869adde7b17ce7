// Command controlplane runs a real Kubernetes control plane for the demo and for manual testing:
// kube-apiserver + etcd through controller-runtime's envtest (binaries from
// hack/envtest-assets.sh), with the project's CRDs installed, an admin kubeconfig written to a
// file, the given namespaces and Node objects created. It runs until SIGINT/SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"guestagent.io/operator/internal/testenv"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "/tmp/guestagent-demo/kubeconfig", "Where to write the admin kubeconfig.")
	nodes := flag.String("nodes", "", "Comma-separated Node objects to create (envtest runs no kubelet).")
	namespaces := flag.String("namespaces", "guestagent-system", "Comma-separated namespaces to create.")
	flag.Parse()
	if err := run(*kubeconfig, split(*nodes), split(*namespaces)); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func run(kubeconfig string, nodes, namespaces []string) error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	user, err := env.Env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating the admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	ctx := context.Background()
	for _, ns := range namespaces {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if err := env.Client.Create(ctx, testenv.Node(n)); err != nil {
			return err
		}
	}
	fmt.Printf("controlplane: ready, kubeconfig %s, apiserver %s\n", kubeconfig, env.Config.Host)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	fmt.Println("controlplane: stopping")
	return nil
}
