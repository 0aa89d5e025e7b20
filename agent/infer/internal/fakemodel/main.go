// Command fakemodel is the fake .eim model of the runner's tests
// (agent/infer/eimfake), configured by a trailer on its own executable.
package main

import (
	"fmt"
	"os"

	"github.com/edge-agent/edge-agent/agent/infer/eimfake"
)

func main() {
	exe, err := os.Executable()
	if err != nil {
		fmt.Println("ERR:", err)
		os.Exit(1)
	}
	os.Exit(eimfake.Main(os.Args, exe))
}
