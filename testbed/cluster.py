"""A real control plane on loopback: etcd + kube-apiserver with RBAC, and optionally the
rest of a kwok-simulated cluster (controller-manager, scheduler, kwok faking nodes/pods).
"""
from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kubernetes import client, config

from .processes import Process, ProcessGroup, TestbedError, free_port, poll

ADMIN_TOKEN = "quartermaster-testbed-admin"
KWOK_NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]
# The apiserver's audit log records what service accounts (the operator's) write, and
# nothing else: the test bed's own servers and tests use the admin token. A write's
# metadata says which object and subresource; Deployments' and StatefulSets' bodies too,
# to show what in a pod template a provider changed, and SwapPlans', to show that a write
# to one is only an approval's annotation.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Request", "userGroups": ["system:serviceaccounts"], "verbs": WRITE_VERBS,
         "resources": [{"group": "apps", "resources": ["deployments", "statefulsets"]},
                       {"group": "quartermaster.dev", "resources": ["swapplans"]}]},
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"], "verbs": WRITE_VERBS},
        {"level": "None"},
    ],
}


def _openssl(*args: str, cwd: Path) -> None:
    try:
        result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise TestbedError("openssl is not installed (make testbed installs it)") from None
    if result.returncode != 0:
        raise TestbedError(f"openssl {' '.join(args[:2])} failed: {result.stderr}")


def make_pki(folder: Path) -> None:
    """A throwaway CA, the apiserver's serving certificate, and the service-account key pair."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes.default.svc\n"
    )
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "7", "-subj", "/CN=quartermaster-testbed-ca", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out",
             "apiserver.csr", "-subj", "/CN=kube-apiserver", cwd=folder)
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "apiserver.crt", "-days", "7", "-extfile", "san.cnf",
             cwd=folder)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)


def kubeconfig_document(server: str, ca_file: Path, token: str, user: str) -> dict:
    ca = base64.b64encode(ca_file.read_bytes()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "testbed", "user": user}}],
        "current-context": user,
    }


@dataclass
class ControlPlane(ProcessGroup):
    """etcd and kube-apiserver with RBAC authorization on; an admin kubeconfig."""

    bin_dir: Path
    workdir: Path
    port: int = field(default_factory=free_port)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def log_dir(self) -> Path:
        return self.workdir

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def audit_events(self) -> list[dict]:
        """The audit log's events so far (see AUDIT_POLICY), oldest first; not a line the
        apiserver is still writing."""
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().split("\n")[:-1] if line.strip()]

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))
        make_pki(self.pki)
        etcd_client, etcd_peer = free_port(), free_port()
        etcd = self._spawn("etcd", [
            str(self.bin_dir / "etcd"), "--name=testbed", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=testbed=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        etcd.wait_until(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{etcd_client}/health", timeout=2).status == 200,
            60, "healthy",
        )
        (self.workdir / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n')
        apiserver = self._spawn("kube-apiserver", [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={self.pki / 'apiserver.crt'}",
            f"--tls-private-key-file={self.pki / 'apiserver.key'}",
            f"--client-ca-file={self.pki / 'ca.crt'}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.pki / 'sa.pub'}",
            f"--service-account-signing-key-file={self.pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true", "--profiling=false",
            f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}", f"--audit-log-path={self.audit_log}",
        ])
        self.admin_kubeconfig.write_text(yaml.safe_dump(
            kubeconfig_document(self.server, self.pki / "ca.crt", ADMIN_TOKEN, "admin")))
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))

        def ready() -> bool:
            request = urllib.request.Request(
                f"{self.server}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            return urllib.request.urlopen(request, timeout=2, context=context).status == 200

        apiserver.wait_until(ready, 120, "ready")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", *args],
            input=input, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise TestbedError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def install_crds(self, folder: Path) -> None:
        self.kubectl("apply", "--server-side", "-f", str(folder))
        names = [f"crd/{doc['metadata']['name']}" for path in sorted(folder.glob("*.yaml"))
                 for doc in yaml.safe_load_all(path.read_text()) if doc]
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)

    def api_client(self, kubeconfig: Path | None = None) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(kubeconfig or self.admin_kubeconfig))

    def kubeconfig_for_service_account(self, namespace: str, name: str, path: Path,
                                       seconds: int = 3600) -> Path:
        """A kubeconfig that authenticates as the ServiceAccount (a bound token), for
        running code with exactly the permissions RBAC grants that account."""
        with self.api_client() as api:
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
            token = client.CoreV1Api(api).create_namespaced_service_account_token(
                name, namespace, request).status.token
        path.write_text(yaml.safe_dump(kubeconfig_document(
            self.server, self.pki / "ca.crt", token, f"system:serviceaccount:{namespace}:{name}")))
        return path

    def create_namespace(self, name: str, labels: dict[str, str] | None = None,
                         timeout: float = 120, made_by: Process | None = None) -> None:
        """Create the namespace (or update its labels) and wait for its default
        ServiceAccount, which the controller-manager makes and Pods cannot do without.
        With `made_by` (the controller-manager), fail early if that process exits."""
        metadata = {"name": name, **({"labels": labels} if labels else {})}
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
        self.kubectl("apply", "-f", "-", input=json.dumps(namespace))
        with self.api_client() as api:
            core = client.CoreV1Api(api)

            def has_default_account() -> bool:
                return core.read_namespaced_service_account("default", name) is not None

            if made_by:
                made_by.wait_until(has_default_account, timeout,
                                   f"serving (no default ServiceAccount in {name} yet)")
            else:
                poll(has_default_account, timeout, f"the default ServiceAccount in {name}",
                     interval=0.5, ignore=(client.ApiException,))


@dataclass
class SimulatedCluster(ProcessGroup):
    """controller-manager, scheduler and kwok on a ControlPlane: Deployments get Pods
    scheduled onto fake Nodes, and kwok marks them Running."""

    control_plane: ControlPlane

    @property
    def log_dir(self) -> Path:
        return self.control_plane.workdir

    def _start(self) -> None:
        cp = self.control_plane
        kubeconfig = f"--kubeconfig={cp.admin_kubeconfig}"
        controller_manager = self._spawn("kube-controller-manager", [
            str(cp.bin_dir / "kube-controller-manager"), kubeconfig,
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
            f"--service-account-private-key-file={cp.pki / 'sa.key'}",
            f"--root-ca-file={cp.pki / 'ca.crt'}",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
            "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
            # kwok renews node leases from one process; on a loaded machine a renewal can
            # come after the default 50 s, and the node lifecycle controller then marks the
            # node's pods NotReady, which kwok never undoes. No test needs a node to go
            # NotReady, so give heartbeats room.
            "--node-monitor-grace-period=10m", "--node-startup-grace-period=10m",
        ])
        self._spawn("kube-scheduler", [
            str(cp.bin_dir / "kube-scheduler"), kubeconfig,
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
        ])
        self._spawn("kwok", [
            str(cp.bin_dir / "kwok"), kubeconfig,
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector="
            + ",".join(f"{key}={value}" for key, value in KWOK_NODE_ANNOTATION.items()),
            f"--server-address=127.0.0.1:{free_port()}",
            "--cidr=10.244.0.0/16", "--node-ip=10.1.0.1",
        ])
        # Serving once the default namespace has its ServiceAccount (and Pods can run there).
        cp.create_namespace("default", made_by=controller_manager)

    def add_node(self, name: str, cpu: str, memory: str, pods: int = 110,
                 labels: dict[str, str] | None = None, gpu: int = 0) -> None:
        allocatable = {"cpu": cpu, "memory": memory, "pods": str(pods)}
        if gpu:
            allocatable["nvidia.com/gpu"] = str(gpu)
        node = client.V1Node(
            metadata=client.V1ObjectMeta(
                name=name, annotations=dict(KWOK_NODE_ANNOTATION),
                labels={"kubernetes.io/hostname": name, "type": "kwok", **(labels or {})}),
            status=client.V1NodeStatus(allocatable=allocatable, capacity=allocatable),
        )
        with self.control_plane.api_client() as api:
            client.CoreV1Api(api).create_node(node)
