//! Running a scenario's events and chaos's actions against the fleet: injections,
//! recoveries, commands.

use super::*;

impl Sim {
    pub(super) async fn execute(&mut self, event: &Event) -> Result<String, String> {
        let p = &event.params;
        let target = event.target.trim();
        match event.action {
            Action::StartFleet => {
                let ids: Vec<NodeId> = self.fleet_targets(target)?;
                for id in &ids {
                    self.start_node(id);
                }
                Ok(format!("started {} nodes", ids.len()))
            }
            Action::StopFleet => {
                let ids = self.fleet_targets(target)?;
                for id in &ids {
                    if let Some(node) = self.nodes.get_mut(id) {
                        node.stop();
                    }
                }
                Ok(format!("stopped {} nodes", ids.len()))
            }
            Action::InjectFailure => {
                let failure: FailureType = p.failure_type.as_deref().unwrap_or_default().parse::<FailureType>()?;
                self.inject(target, failure, p.gpu_index, p.xid_code, p.count, false).await
            }
            Action::RecoverFailure => {
                let failure = match p.failure_type.as_deref() {
                    Some(text) => Some(text.parse::<FailureType>()?),
                    None => None,
                };
                self.recover(target, failure).await
            }
            Action::IssueCommand => self.issue_command(target, event).await,
            Action::WaitForStatus => {
                let expected: ExpectedStatus =
                    p.expected_status.as_deref().unwrap_or_default().parse::<ExpectedStatus>()?;
                let timeout = p.timeout.map_or(DEFAULT_WAIT_TIMEOUT, |t| t.0);
                let deadline = self.driver.now() + timeout;
                loop {
                    let (status, health) = self.node_state(target).await?;
                    if status.is_some_and(|s| matches_expected(expected, s, health)) {
                        return Ok(format!("{target} is {}", describe(status, health)));
                    }
                    if self.driver.now() >= deadline {
                        return Err(format!(
                            "{target} did not become {} within {}; it is {}",
                            p.expected_status.as_deref().unwrap_or_default(),
                            bosun_config::duration::format(timeout),
                            describe(status, health)
                        ));
                    }
                    let next = (self.driver.now() + WAIT_POLL).min(deadline);
                    self.run_until(next).await;
                }
            }
            Action::Wait => Ok("waited".into()),
            Action::Log => {
                let message = p.log_message.as_deref().or(p.message.as_deref()).unwrap_or_default();
                println!("[{:>8.1}s] {message}", self.driver.now().as_secs_f64());
                Ok(message.to_owned())
            }
            Action::Assert => {
                let kind = match p.failure_type.as_deref().map(str::trim) {
                    None | Some("") => AssertionKind::NodeStatus,
                    Some(text) => serde_yaml::from_str(text).map_err(|_| format!("unknown assertion {text:?}"))?,
                };
                self.flush().await;
                let result = self.check(kind, target, p.expected_status.as_deref().unwrap_or_default()).await;
                if result.passed {
                    Ok(format!("{kind} {target}: {}", result.actual))
                } else {
                    Err(format!("{kind} {target} expected {} but was {}", result.expected, result.actual))
                }
            }
            Action::RestartServer => self.restart_server().await,
            Action::KillLeader => self.kill_leader().await,
            Action::RestartReplica => self.restart_replica(target).await,
            Action::ApplyRunbook => self.apply_runbook(p.runbook.as_deref().unwrap_or_default()).await,
            Action::StartRun => self.start_run(target, p).await,
            Action::WaitForRun => self.wait_for_run(target, p).await,
            Action::ScalePool => {
                let count = p.count.unwrap_or_default();
                let request = v1::ScalePoolRequest { name: target.to_owned(), target: count, ..Default::default() };
                self.admin().scale_pool(request).await.map_err(|e| format!("ScalePool {target}: {e}"))?;
                Ok(format!("pool {target} set to {count}"))
            }
        }
    }

    /// `start_fleet`/`stop_fleet` act on one node when given a target, else on the fleet.
    pub(super) fn fleet_targets(&self, target: &str) -> Result<Vec<NodeId>, String> {
        if target.is_empty() {
            // Stress fleets start on their schedule, not all at once.
            if self.scenario.stress.is_some() && self.scenario.fleet.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(self.nodes.keys().cloned().collect());
        }
        let id: NodeId = target.parse().map_err(|e| format!("{e}"))?;
        if self.nodes.contains_key(&id) { Ok(vec![id]) } else { Err(format!("no fleet node {target:?}")) }
    }

    /// The GPUs and network switch of `target`: a fleet node or a fake-provider machine.
    pub(super) async fn machine(
        &self,
        target: &str,
    ) -> Result<(Arc<bosun_agent::FakeGpus>, Option<bosun_agent::NetworkSwitch>), String> {
        let id: NodeId = target.parse().map_err(|e| format!("target {target:?}: {e}"))?;
        if let Some(node) = self.nodes.get(&id) {
            return Ok((Arc::clone(&node.gpus), node.switch.clone()));
        }
        for provider in self.providers.values() {
            if let Some(gpus) = provider.gpus_of(&id) {
                let switch =
                    provider.instance_of(&id).and_then(|instance| self.clients.machine_switch(instance.as_str()));
                return Ok((gpus, switch));
            }
        }
        Err(format!("{target:?} is neither a fleet node, a running fake-provider machine nor a fake provider"))
    }

    pub(super) async fn inject(
        &mut self,
        target: &str,
        failure: FailureType,
        gpu_index: Option<i64>,
        xid: Option<u32>,
        count: Option<u32>,
        cascading: bool,
    ) -> Result<String, String> {
        if let Some(provider) = self.providers.get(target) {
            return match failure {
                FailureType::ProviderOutage => {
                    provider.begin_outage(ProviderError::Unavailable {
                        provider: target.to_owned(),
                        message: "simulated outage".into(),
                    });
                    self.tally.outages += 1;
                    Ok(format!("provider {target} is down"))
                }
                FailureType::Gpu(FaultKind::BootFailure) => {
                    let count = count.unwrap_or(1);
                    provider.fail_boot_next(count);
                    self.tally.record("boot_failure", None, false);
                    Ok(format!("the next {count} machines of {target} will not boot"))
                }
                other => Err(format!("{other} cannot be injected into provider {target}; use a node")),
            };
        }
        if failure == FailureType::ProviderOutage {
            return Err(format!("provider_outage needs a fake provider as its target; {target:?} is not one"));
        }
        let (gpus, switch) = self.machine(target).await?;
        let gpu_count = gpus.count();
        let gpu = match gpu_index {
            Some(i) if i >= 0 => u32::try_from(i).map_err(|_| format!("gpu_index {i} is too large"))?,
            _ => self.rng.random_range(0..gpu_count.max(1)),
        };
        let fault = match failure {
            FailureType::Network => {
                let switch = switch.ok_or_else(|| format!("{target} is not running; its network cannot fail"))?;
                switch.disconnect();
                None
            }
            FailureType::ProviderOutage => unreachable!("handled above"),
            FailureType::Gpu(kind) => Some(match kind {
                FaultKind::Xid => Fault::Xid { gpu, code: xid.unwrap_or(79) },
                FaultKind::Thermal => {
                    Fault::Thermal { gpu: gpu_index.filter(|i| *i >= 0).map(|_| gpu), celsius: FAILURE_CELSIUS }
                }
                FaultKind::EccSingleBit => Fault::EccSingleBit { gpu, count: 1_000 },
                FaultKind::EccDoubleBit => Fault::EccDoubleBit { gpu },
                FaultKind::Nvlink => Fault::Nvlink { gpu, link: 0 },
                FaultKind::Pcie => Fault::Pcie { gpu },
                FaultKind::Power => Fault::PowerBrake { gpu },
                FaultKind::DeviceError => Fault::DeviceError { gpu },
                FaultKind::BackendFailure => Fault::BackendFailure,
                FaultKind::BootFailure => Fault::BootFailure,
            }),
        };
        if let Some(fault) = &fault {
            gpus.inject(fault.clone()).map_err(|e| format!("{target}: {e}"))?;
        }
        // A boot failure shows when the machine next boots: reboot it into the failure.
        if failure == FailureType::Gpu(FaultKind::BootFailure)
            && let Ok(id) = target.parse::<NodeId>()
            && let Some(node) = self.nodes.get_mut(&id)
            && node.is_running()
        {
            node.stop();
            self.start_node(&id);
        }
        let xid_code = matches!(fault, Some(Fault::Xid { .. })).then(|| xid.unwrap_or(79));
        self.tally.record(&failure.to_string(), xid_code, cascading);
        let pool_machine = target.parse::<NodeId>().is_ok_and(|id| !self.nodes.contains_key(&id));
        self.remediation.injected(target, xid_code, self.clock.now(), pool_machine);
        Ok(match fault {
            Some(fault) => format!("{target}: {fault}"),
            None => format!("{target}: network down"),
        })
    }

    pub(super) async fn recover(&mut self, target: &str, failure: Option<FailureType>) -> Result<String, String> {
        if let Some(provider) = self.providers.get(target) {
            provider.end_outage();
            return Ok(format!("provider {target} is back"));
        }
        let (gpus, switch) = self.machine(target).await?;
        match failure {
            Some(FailureType::Network) => {
                if let Some(switch) = switch {
                    switch.reconnect();
                }
            }
            Some(FailureType::Gpu(kind)) => gpus.recover(kind),
            Some(FailureType::ProviderOutage) => {
                return Err(format!("{target:?} is not a fake provider; provider_outage has nothing to recover"));
            }
            None => {
                gpus.recover_all();
                if let Some(switch) = switch {
                    switch.reconnect();
                }
            }
        }
        self.tally.recoveries += 1;
        Ok(format!("{target}: recovered {}", failure.map_or("everything".to_owned(), |f| f.to_string())))
    }

    pub(super) async fn issue_command(&mut self, target: &str, event: &Event) -> Result<String, String> {
        let p = &event.params;
        let text = p.command_type.as_deref().unwrap_or_default().trim();
        let kind: Result<bosun_core::CommandKind, _> = match text.to_ascii_lowercase().as_str() {
            "diagnose" | "diagnostic" => "RUN_DIAGNOSTIC".parse(),
            _ => text.parse(),
        };
        let kind = kind.map_err(|e| e.to_string())?;
        let (wire, custom_name) = convert::command_type(&kind);
        // Navarch handed `command_args.reason` on as the command's reason (to the notifier).
        let reason = p
            .command_args
            .get("reason")
            .and_then(scalar_text)
            .unwrap_or_else(|| format!("scenario {}", self.scenario.name));
        let parameters = p.command_args.iter().filter_map(|(k, v)| scalar_text(v).map(|v| (k.clone(), v))).collect();
        let request = v1::IssueCommandRequest {
            node_id: target.to_owned(),
            r#type: wire.into(),
            custom_name,
            parameters,
            reason,
            ..Default::default()
        };
        let response =
            self.admin().issue_command(request).await.map_err(|e| format!("IssueCommand {kind} {target}: {e}"))?;
        let id = response.into_owned().command.as_option().map(|c| c.command_id.clone()).unwrap_or_default();
        Ok(format!("{kind} issued to {target} (command {id})"))
    }

    pub(super) async fn apply_chaos(&mut self, action: ChaosAction) {
        match action {
            ChaosAction::Inject { node, failure, xid, cascading } => {
                let target = node.to_string();
                if let Err(error) = self.inject(&target, failure, None, xid, None, cascading).await {
                    tracing::debug!(%error, "chaos injection skipped");
                }
            }
            ChaosAction::Recover { node, failure } => {
                let _ = self.recover(node.as_str(), failure).await;
            }
            ChaosAction::OutageStarted { name } => {
                self.tally.outages += 1;
                tracing::info!(outage = %name, "scheduled outage begins");
            }
            ChaosAction::Replace { old, new } => {
                if let Some(node) = self.nodes.get_mut(&old) {
                    node.stop();
                    let mut spec = node.spec.clone();
                    spec.id = new.clone();
                    let seed = self.rng.random();
                    self.nodes.insert(new.clone(), SimNode::new(spec, seed, Arc::clone(&self.clock) as Arc<dyn Clock>));
                    self.start_node(&new);
                    self.tally.replacements += 1;
                }
            }
        }
    }
}
