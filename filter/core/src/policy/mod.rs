//! The policy check: the tenant's Rego, run as RVM bytecode, answering
//! `data.intentgate.policy.decision = {allow, escalate?, reason?, rule?, requires_step_up?}`.
//! Every way of not getting a well-formed decision denies (SPEC §3, fail closed).

mod cache;
mod decision;
mod input;
mod reads;

pub use decision::PolicyOutcome;
pub use input::{CapabilityInput, PolicyInput, RequestInput, empty_args};

use std::sync::{Arc, Mutex};

#[cfg(feature = "compiler")]
use regorus::Engine;
use regorus::Value;
#[cfg(feature = "compiler")]
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::RegoVM;
use regorus::rvm::program::{DeserializationResult, Program};
use sha2::{Digest, Sha256};

/// The rule every tenant policy defines.
pub const ENTRYPOINT: &str = "data.intentgate.policy.decision";
/// Instructions one evaluation may execute before it is stopped and the call denied.
pub const DEFAULT_INSTRUCTION_LIMIT: usize = 200_000;
/// Rego source larger than this is refused at compile time.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The parser's or compiler's message, verbatim: operators fix their Rego from it.
    #[error("{0}")]
    Compile(String),
    #[error("policy bytecode is not loadable: {0}")]
    Bytecode(String),
}

/// A compiled tenant policy, ready to evaluate, shared by every thread that evaluates it. Each
/// evaluation borrows a VM of its own from the policy's pool (made from the one compiled program
/// when none is free), so threads do not wait for each other and registers are reused.
pub struct Policy {
    program: Arc<Program>,
    sha256: String,
    instruction_limit: usize,
    /// The entry point's index in the program, found once.
    entry: usize,
    /// Decisions by the input values they depend on, when the program proves which those are.
    cache: Option<cache::DecisionCache>,
    /// Idle VMs; at most as many as evaluations ever ran at once.
    vms: Mutex<Vec<RegoVM>>,
    /// The interpreter over the embedded source, built on first need: the RVM reports a conflict
    /// between rule bodies as an undefined result, and only the interpreter can tell the two apart.
    #[cfg(feature = "compiler")]
    diagnostics: Mutex<Option<Engine>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl Policy {
    /// Parses and compiles Rego source to RVM bytecode.
    #[cfg(feature = "compiler")]
    pub fn compile(source: &str) -> Result<Self, PolicyError> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(PolicyError::Compile(format!(
                "policy source exceeds {MAX_SOURCE_BYTES} bytes"
            )));
        }
        let mut engine = Engine::new();
        engine
            .add_policy("policy.rego".into(), source.into())
            .map_err(|e| PolicyError::Compile(e.to_string()))?;
        let entry: regorus::Rc<str> = ENTRYPOINT.into();
        let compiled = engine
            .compile_with_entrypoint(&entry)
            .map_err(|e| PolicyError::Compile(e.to_string()))?;
        let program = Compiler::compile_from_policy(&compiled, &[ENTRYPOINT])
            .map_err(|e| PolicyError::Compile(e.to_string()))?;
        Ok(Self::from_program(program, sha256_hex(source.as_bytes())))
    }

    /// Loads bytecode made by [`Policy::bytecode`]. Bytecode that would need recompiling is refused:
    /// the filter never compiles Rego on the push path.
    pub fn from_bytecode(bytes: &[u8]) -> Result<Self, PolicyError> {
        let program = match Program::deserialize_binary(bytes).map_err(PolicyError::Bytecode)? {
            DeserializationResult::Complete(program) => program,
            DeserializationResult::Partial(_) => {
                return Err(PolicyError::Bytecode(
                    "bytecode needs recompilation (built by another regorus version?)".into(),
                ));
            }
        };
        if program.entry_points.get_index_of(ENTRYPOINT).is_none() {
            return Err(PolicyError::Bytecode(format!(
                "bytecode lacks {ENTRYPOINT}"
            )));
        }
        let sha = program
            .sources
            .first()
            .map(|s| sha256_hex(s.content.as_bytes()))
            .unwrap_or_else(|| sha256_hex(bytes));
        Ok(Self::from_program(Arc::new(program), sha))
    }

    fn from_program(program: Arc<Program>, sha256: String) -> Self {
        let policy = Policy {
            entry: program
                .entry_points
                .get_index_of(ENTRYPOINT)
                .unwrap_or(usize::MAX),
            cache: reads::input_keys(&program).map(cache::DecisionCache::new),
            program,
            sha256,
            instruction_limit: DEFAULT_INSTRUCTION_LIMIT,
            vms: Mutex::new(Vec::new()),
            #[cfg(feature = "compiler")]
            diagnostics: Mutex::new(None),
        };
        // The first VM is made now, so the first evaluation does not pay for it.
        let vm = policy.new_vm();
        policy.give_back(vm);
        policy
    }

    pub fn with_instruction_limit(self, limit: usize) -> Self {
        let policy = Policy {
            instruction_limit: limit,
            vms: Mutex::new(Vec::new()),
            cache: self
                .cache
                .as_ref()
                .map(|c| cache::DecisionCache::new(c.keys().to_vec())),
            ..self
        };
        let vm = policy.new_vm();
        policy.give_back(vm);
        policy
    }

    fn new_vm(&self) -> RegoVM {
        let mut vm = RegoVM::new();
        vm.load_program(Arc::clone(&self.program));
        vm.set_max_instructions(self.instruction_limit);
        vm
    }

    /// An idle VM, or a new one when every VM is in use by another thread.
    fn take_vm(&self) -> RegoVM {
        let idle = self.vms.lock().ok().and_then(|mut vms| vms.pop());
        idle.unwrap_or_else(|| self.new_vm())
    }

    fn give_back(&self, vm: RegoVM) {
        if let Ok(mut vms) = self.vms.lock() {
            vms.push(vm);
        }
    }

    pub fn instruction_limit(&self) -> usize {
        self.instruction_limit
    }

    /// Serialized RVM program (it embeds the Rego source).
    pub fn bytecode(&self) -> Result<Vec<u8>, PolicyError> {
        self.program
            .serialize_binary()
            .map_err(PolicyError::Bytecode)
    }

    /// SHA-256 of the Rego source, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn source(&self) -> Option<&str> {
        self.program.sources.first().map(|s| s.content.as_str())
    }

    /// The top-level `input` keys the decisions are cached by; `None` when the policy is not
    /// cached (what it reads, or that it is deterministic, cannot be proved).
    pub fn cached_by(&self) -> Option<&[String]> {
        self.cache.as_ref().map(cache::DecisionCache::keys)
    }

    /// The decision for a call: remembered when the policy is cached and the values it depends on
    /// were seen before, evaluated otherwise. `capability`: the token's part, ready-made.
    pub fn decide(&self, input: &PolicyInput<'_>, capability: Option<&Value>) -> PolicyOutcome {
        let key = self
            .cache
            .as_ref()
            .and_then(|cache| Some((cache, cache.key_of(input, capability)?)));
        if let Some((cache, key)) = &key
            && let Some(outcome) = cache.get(key)
        {
            return outcome;
        }
        let outcome = match input.to_value(capability) {
            Ok(value) => self.evaluate(value),
            Err(err) => PolicyOutcome::Error(format!("policy input could not be built: {err}")),
        };
        if let Some((cache, key)) = key {
            cache.keep(key, &outcome);
        }
        outcome
    }

    /// Evaluates the decision for `input`, uncached. Never fails: errors become denials that say why.
    pub fn evaluate(&self, input: Value) -> PolicyOutcome {
        let mut vm = self.take_vm();
        vm.set_input(input.clone());
        let result = vm.execute_entry_point_by_index(self.entry);
        self.give_back(vm);
        match result {
            Ok(Value::Undefined) => PolicyOutcome::Error(self.explain_undefined(input)),
            Ok(value) => decision::interpret(&value),
            Err(err) => PolicyOutcome::Error(decision::describe_error(&err.to_string())),
        }
    }

    /// Why the decision is undefined: without the interpreter, the RVM cannot tell a missing rule
    /// from rule bodies that conflict.
    #[cfg(not(feature = "compiler"))]
    fn explain_undefined(&self, _input: Value) -> String {
        "policy produced no decision (data.intentgate.policy.decision is undefined, or its rule bodies conflict)".into()
    }

    /// Why the decision is undefined: no rule matched, or rule bodies conflicted.
    #[cfg(feature = "compiler")]
    fn explain_undefined(&self, input: Value) -> String {
        const NO_DECISION: &str =
            "policy produced no decision (data.intentgate.policy.decision is undefined)";
        let Some(source) = self.source() else {
            return NO_DECISION.into();
        };
        let Ok(mut slot) = self.diagnostics.lock() else {
            return NO_DECISION.into();
        };
        if slot.is_none() {
            let mut engine = Engine::new();
            if engine
                .add_policy("policy.rego".into(), source.into())
                .is_err()
            {
                return NO_DECISION.into();
            }
            *slot = Some(engine);
        }
        let Some(engine) = slot.as_mut() else {
            return NO_DECISION.into();
        };
        engine.set_input(input);
        match engine.eval_rule(ENTRYPOINT.into()) {
            Err(err) => decision::describe_error(&err.to_string()),
            Ok(_) => NO_DECISION.into(),
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod tests;
