// Command luacheck runs Argo CD health-check tests under gopher-lua, the Lua VM that Argo CD
// embeds, set up the way Argo CD sets it up for a health check that argocd-cm configures
// (resource.customizations.health.<group>_<Kind>):
//
//   - the standard libraries are not opened (lua.Options{SkipOpenLibs: true}, Argo CD's
//     default unless resource.customizations.useOpenLibs.<group>_<Kind> is true); then only
//     package, base and table are opened (and Argo CD's own reduced os, which our scripts do
//     not use and which is left out here: a script that calls os fails, as is safe);
//   - the object becomes the global obj, converted from its JSON form as Argo CD's decodeValue
//     does (objects and arrays to tables, numbers to LNumber, null to nil);
//   - the script runs as a chunk under a one-second deadline and returns a table whose status
//     must be one of Argo CD's health codes.
//
// With -openlibs every standard library is opened as well (Argo CD's built-in scripts and
// useOpenLibs=true): a check must pass both ways.
//
//	luacheck [-openlibs] DIR...
//
// Each DIR is searched for health.lua next to a health_test.yaml (Argo CD's
// resource_customizations layout). The last line printed is "N passed, N failed"; the exit
// status is 1 when a case fails, 2 on unusable input.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type healthTest struct {
	Tests []struct {
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
		InputPath string `json:"inputPath"`
	} `json:"tests"`
}

// Argo CD's health status codes (gitops-engine's health.HealthStatusCode).
var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

func main() {
	openLibs := flag.Bool("openlibs", false, "open every standard library (useOpenLibs=true)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: luacheck [-openlibs] DIR...")
		os.Exit(2)
	}
	var dirs []string
	for _, root := range flag.Args() {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && exists(filepath.Join(path, "health.lua")) && exists(filepath.Join(path, "health_test.yaml")) {
				dirs = append(dirs, path)
			}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "luacheck:", err)
			os.Exit(2)
		}
	}
	if len(dirs) == 0 {
		fmt.Fprintln(os.Stderr, "luacheck: no health.lua with a health_test.yaml found")
		os.Exit(2)
	}
	sort.Strings(dirs)
	mode := "gopher-lua, argocd-cm libraries (package, base, table)"
	if *openLibs {
		mode = "gopher-lua, all standard libraries"
	}
	passed, failed := 0, 0
	for _, dir := range dirs {
		script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
		if err != nil {
			fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			fatal(err)
		}
		var cases healthTest
		if err := yaml.UnmarshalStrict(raw, &cases); err != nil {
			fatal(fmt.Errorf("%s/health_test.yaml: %w", dir, err))
		}
		if len(cases.Tests) == 0 {
			fatal(fmt.Errorf("%s/health_test.yaml has no tests", dir))
		}
		for _, c := range cases.Tests {
			input := filepath.Join(dir, c.InputPath)
			status, message, err := run(string(script), input, *openLibs)
			if err != nil {
				status, message = "<error>", err.Error()
			}
			if status == c.HealthStatus.Status && message == c.HealthStatus.Message {
				passed++
				fmt.Printf("ok   %s (%s): %s: %s\n", input, mode, status, message)
			} else {
				failed++
				fmt.Printf("FAIL %s (%s)\n     want %s: %s\n     got  %s: %s\n", input, mode,
					c.HealthStatus.Status, c.HealthStatus.Message, status, message)
			}
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "luacheck:", err)
	os.Exit(2)
}

// run evaluates script with the object in inputPath as obj and returns its status and message.
func run(script, inputPath string, openLibs bool) (string, string, error) {
	raw, err := os.ReadFile(inputPath)
	if err != nil {
		return "", "", err
	}
	// YAML to JSON to Go values: the form an object has when it comes from the API server.
	var obj map[string]interface{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return "", "", err
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("health.lua returned %s, not a table", l.Get(-1).Type())
	}
	status := lua.LVAsString(hs.RawGetString("status"))
	if !validStatus[status] {
		return "", "", errors.New("Lua returned an invalid health status: " + status)
	}
	return status, lua.LVAsString(hs.RawGetString("message")), nil
}

// toLua converts a JSON value as Argo CD does: objects and arrays to tables, numbers to
// LNumber, null (and anything unknown) to nil.
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case json.Number:
		return lua.LString(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetH(lua.LString(key), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}
