// Command coredns is CoreDNS v1.12.1 (the version kubeadm v1.34 deploys) with only
// the plugins the test bed's cluster DNS needs: the kubernetes plugin answers
// cluster.local and reverse zones from the API server; nothing forwards, because
// the pod network has no route out and names outside the cluster must not resolve.
//
// This is CoreDNS's documented way to choose plugins at compile time (see
// coremain and dnsserver.Directives); the order below is the order of CoreDNS's
// own plugin.cfg.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

var directives = []string{
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"kubernetes",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
