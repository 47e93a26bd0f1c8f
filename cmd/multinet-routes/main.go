// Command multinet-routes is the multinet routes tool. Run without arguments by a container
// runtime it is a chained CNI plugin that adds subnet-group, static and policy routes to the
// interface of the previous plugin; run as `multinet-routes apply ...` it is the one-shot route
// injector for init-containers. See docs/routes.md.
package main

import (
	"context"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/multinet/multinet/internal/routes"
)

func main() {
	if len(os.Args) > 1 {
		os.Exit(routes.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    routes.CmdAdd,
		Del:    routes.CmdDel,
		Check:  routes.CmdCheck,
		GC:     routes.CmdGC,
		Status: routes.CmdStatus,
	}, version.All, "multinet-routes: subnet-group, static and policy routes for secondary interfaces")
}
