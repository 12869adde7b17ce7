// Command probe is the in-cluster client of the cluster test: run as a pod, it fetches each URL
// given as an argument with the pod's ServiceAccount token as a bearer token (as Prometheus does
// with the ServiceMonitors' authorization), and prints one line per URL: "URL STATUS" followed by
// the body's lines that start with a prefix given with -match. It exits 1 if any request fails.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

const tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

func main() {
	match := flag.String("match", "guestagent_", "print the body lines starting with this prefix")
	noToken := flag.Bool("no-token", false, "send no bearer token")
	flag.Parse()
	token, _ := os.ReadFile(tokenFile)
	client := &http.Client{
		Timeout: 10 * time.Second,
		// The manager's metrics endpoint serves a self-signed certificate (controller-runtime's
		// default); the test checks authorization, not the serving certificate.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec
	}
	failed := false
	for _, url := range flag.Args() {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			fmt.Printf("%s ERROR %v\n", url, err)
			failed = true
			continue
		}
		if !*noToken && len(token) > 0 {
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Printf("%s ERROR %v\n", url, err)
			failed = true
			continue
		}
		fmt.Printf("%s %d\n", url, resp.StatusCode)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if *match != "" && strings.HasPrefix(sc.Text(), *match) {
				fmt.Println(sc.Text())
			}
		}
		_ = resp.Body.Close()
	}
	if failed {
		os.Exit(1)
	}
}
