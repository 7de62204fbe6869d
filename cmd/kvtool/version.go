package main

import (
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module's build information.
var version = ""

// versionInfo is what `kvtool version` prints.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}

func versionString() string {
	v := buildVersion()
	s := v.Version
	if v.Commit != "" {
		s += " (" + v.Commit[:min(12, len(v.Commit))] + ")"
	}
	return s
}

func versionCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of kvtool",
		Description: `Prints the kvtool version, the commit it was built from (when known), the Go
version and the platform. kvtool --version prints the short form.

Examples:
  kvtool version
  kvtool version --json`,
		Action: act(e, spec{}, func(c *call) error {
			p := newPrinter(c.Context)
			v := buildVersion()
			if p.json {
				return p.JSON(v)
			}
			t := p.Table("kvtool", versionString())
			t.Row("go", v.GoVersion)
			t.Row("platform", v.Platform)
			return t.Flush()
		}),
	}
}
