package cloudinit

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAzureProvisionReportsReady provisions an Azure VM from ovf-env.xml
// (the copy in /var/lib/waagent: reading the DVD is the datasource's
// tests' business) against a double of the wireserver that speaks the
// goal state / health protocol as documented, not Azure itself. The ready
// report comes once, after the instance data is saved and before the
// modules run; the final stage does not report again; the ovf's user is
// the default user and has its key.
func TestAzureProvisionReportsReady(t *testing.T) {
	e := newEnv(t)
	writeFile(t, e.root.Join("/sys/class/dmi/id/sys_vendor"), "Microsoft Corporation\n")
	writeFile(t, e.root.Join("/sys/class/dmi/id/chassis_asset_tag"), "7783-7084-3265-9085-8269-3286-77\n")
	writeFile(t, e.root.Join("/sys/class/dmi/id/product_uuid"), "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0\n")
	ovf, err := os.ReadFile(filepath.Join("datasource", "testdata", "ovf-env.xml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.root.Join("/var/lib/waagent/ovf-env.xml"), string(ovf))
	var mu sync.Mutex
	var reports []string
	var savedFirst, modulesLater bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("x-ms-version") != "2012-11-30" {
			http.Error(w, "missing x-ms-version", http.StatusBadRequest)
			return
		}
		switch r.URL.RequestURI() {
		case "/machine/?comp=goalstate":
			io.WriteString(w, `<GoalState><Incarnation>1</Incarnation><Container><ContainerId>c-1</ContainerId>
				<RoleInstanceList><RoleInstance><InstanceId>r-1</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>`)
		case "/machine?comp=health":
			body, _ := io.ReadAll(r.Body)
			reports = append(reports, string(body))
			_, err := os.Stat(e.root.Join(InstanceDataFile))
			savedFirst = err == nil
			_, err = os.Stat(e.root.Join("/home/azureuser/.ssh/authorized_keys"))
			modulesLater = os.IsNotExist(err)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, stage := range []Stage{StageInit, StageFinal} {
		rep, err := Provision(context.Background(), Options{
			Root: e.root, Runner: e.rec, Console: e.console, Now: fakeClock(), NewHostKey: e.hostKey, Stage: stage,
			IMDSBase: "http://127.0.0.1:1", WireServer: srv.URL, NetWait: time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Errors) > 0 {
			t.Fatalf("stage %s: errors %v", stage, rep.Errors)
		}
		if stage == StageInit && rep.Source != "azure:/var/lib/waagent/ovf-env.xml" {
			t.Errorf("source: got %q, want the kept ovf-env.xml", rep.Source)
		}
	}
	if len(reports) != 1 {
		t.Fatalf("got %d ready reports, want 1 (init stage only)", len(reports))
	}
	if !strings.Contains(reports[0], "<State>Ready</State>") || !strings.Contains(reports[0], "<ContainerId>c-1</ContainerId>") {
		t.Errorf("report: got %s", reports[0])
	}
	if !savedFirst || !modulesLater {
		t.Errorf("reported ready with instance data saved=%v and before the modules=%v, want both", savedFirst, modulesLater)
	}
	keys, err := os.ReadFile(e.root.Join("/home/azureuser/.ssh/authorized_keys"))
	if err != nil || !strings.Contains(string(keys), "AzureOvfKey") {
		t.Errorf("azureuser's authorized_keys: got %q (%v), want the ovf key", keys, err)
	}
}
