//! What a compiled policy reads of its input, proved from its RVM instructions, so that its
//! decisions can be cached by those values alone.
//!
//! The proof: a register window runs the straight code from its entry points (the main entry; a
//! rule body, with its definition's destructuring block) to their first terminators, every jump
//! stays inside that code, and the VM gives each body fresh registers but for the result and a
//! function's arguments (input is never allowed there). Within one window, a register `LoadInput`
//! writes may only be indexed by a literal string (`input.tool`,
//! `input.args.amount`): anything else that reads it (the whole input passed on, iterated, indexed
//! by a variable, returned) defeats the proof. Builtins must be pure: the same arguments, the same
//! answer (no clock, randomness, network, `walk`, printing). Anything the proof does not cover
//! (an instruction it cannot place, a host call) gives no claim, and the policy is not cached.

use std::collections::BTreeSet;

use regorus::Value;
use regorus::rvm::Instruction;
use regorus::rvm::instructions::LiteralOrRegister;
use regorus::rvm::program::Program;

/// Builtins that answer only from their arguments. A builtin not named here is assumed impure.
const PURE_BUILTINS: &[&str] = &[
    "abs",
    "all",
    "any",
    "array.concat",
    "array.reverse",
    "array.slice",
    "base64.decode",
    "base64.encode",
    "base64url.decode",
    "base64url.encode",
    "ceil",
    "concat",
    "contains",
    "count",
    "endswith",
    "floor",
    "format_int",
    "glob.match",
    "glob.quote_meta",
    "hex.decode",
    "hex.encode",
    "indexof",
    "intersection",
    "is_array",
    "is_boolean",
    "is_null",
    "is_number",
    "is_object",
    "is_set",
    "is_string",
    "json.is_valid",
    "json.marshal",
    "json.unmarshal",
    "lower",
    "max",
    "min",
    "numbers.range",
    "object.get",
    "object.keys",
    "object.remove",
    "object.subset",
    "object.union",
    "product",
    "regex.find_n",
    "regex.is_valid",
    "regex.match",
    "regex.replace",
    "regex.split",
    "replace",
    "round",
    "semver.compare",
    "semver.is_valid",
    "sort",
    "split",
    "sprintf",
    "startswith",
    "strings.any_prefix_match",
    "strings.any_suffix_match",
    "strings.replace_n",
    "strings.reverse",
    "substring",
    "sum",
    "to_number",
    "trim",
    "trim_left",
    "trim_prefix",
    "trim_right",
    "trim_space",
    "trim_suffix",
    "type_name",
    "union",
    "upper",
    "net.cidr_contains",
    "net.cidr_intersects",
];

/// The top-level `input` keys the policy's decision depends on (sorted, distinct), or `None` when
/// that cannot be proved.
pub(super) fn input_keys(program: &Program) -> Option<Vec<String>> {
    let mut keys = BTreeSet::new();
    let mut covered = vec![false; program.instructions.len()];
    for &entry in program.entry_points.values() {
        let frame = Frame {
            entries: &[entry],
            result: None,
            retained: 0,
        };
        check_frame(program, &frame, &mut keys, &mut covered)?;
    }
    for rule in &program.rule_infos {
        // Registers the VM keeps from one body to the next (the result, a function's arguments):
        // input held there would outlive the body the proof looks at.
        let params = rule.function_info.as_ref().map_or(0, |f| f.num_params);
        let retained = usize::try_from(params).ok()?.checked_add(1)?;
        // Each body starts with fresh registers, shared only with its definition's destructuring.
        for (definition, bodies) in rule.definitions.iter().enumerate() {
            let destructuring = rule.destructuring_blocks.get(definition).copied().flatten();
            for &body in bodies {
                let mut entries = vec![usize::try_from(body).ok()?];
                if let Some(block) = destructuring {
                    entries.push(usize::try_from(block).ok()?);
                }
                let frame = Frame {
                    entries: &entries,
                    result: Some(rule.result_reg),
                    retained,
                };
                check_frame(program, &frame, &mut keys, &mut covered)?;
            }
        }
    }
    // An input read outside every frame the proof walked is one it did not see.
    let unseen = program
        .instructions
        .iter()
        .zip(&covered)
        .any(|(instruction, seen)| matches!(instruction, Instruction::LoadInput { .. }) && !seen);
    (!unseen).then(|| keys.into_iter().collect())
}

/// The runs of one frame: from each entry to its first terminator, inclusive.
fn runs(program: &Program, entries: &[usize]) -> Option<Vec<(usize, usize)>> {
    entries
        .iter()
        .map(|&start| {
            let end = (start..program.instructions.len()).find(|&pc| {
                matches!(
                    program.instructions.get(pc),
                    Some(
                        Instruction::RuleReturn {}
                            | Instruction::Return { .. }
                            | Instruction::Halt {}
                            | Instruction::DestructuringSuccess {}
                    )
                )
            })?;
            Some((start, end))
        })
        .collect()
}

/// The code one register window runs.
struct Frame<'a> {
    entries: &'a [usize],
    /// The rule's result register, which the VM reads when a body ends.
    result: Option<u8>,
    /// Registers below this one outlive the body.
    retained: usize,
}

fn check_frame(
    program: &Program,
    frame: &Frame<'_>,
    keys: &mut BTreeSet<String>,
    covered: &mut [bool],
) -> Option<()> {
    let runs = runs(program, frame.entries)?;
    let instructions = || {
        runs.iter().flat_map(|&(start, end)| {
            (start..=end).filter_map(|pc| program.instructions.get(pc).map(|i| (pc, *i)))
        })
    };
    let mut input = BTreeSet::new();
    let mut implicit = Vec::new();
    for (pc, instruction) in instructions() {
        if let Some(flag) = covered.get_mut(pc) {
            *flag = true;
        }
        if let Instruction::LoadInput { dest } = instruction {
            if usize::from(dest) < frame.retained {
                return None;
            }
            input.insert(dest);
        }
        let run = runs
            .iter()
            .find(|(start, end)| (*start..=*end).contains(&pc))?;
        for target in jump_targets(program, &instruction)? {
            if !(run.0..=run.1).contains(&target) {
                return None;
            }
        }
        implicit.extend(loop_registers(program, &instruction)?);
    }
    implicit.extend(frame.result);
    for (_, instruction) in instructions() {
        match instruction {
            Instruction::LoadInput { .. } => continue,
            Instruction::IndexLiteral {
                container,
                literal_idx,
                ..
            } if input.contains(&container) => {
                keys.insert(literal_string(program, literal_idx)?);
                continue;
            }
            Instruction::ChainedIndex { params_index } => {
                let params = program
                    .instruction_data
                    .chained_index_params
                    .get(usize::from(params_index))?;
                if input.contains(&params.root) {
                    let Some(LiteralOrRegister::Literal(first)) = params.path_components.first()
                    else {
                        return None;
                    };
                    keys.insert(literal_string(program, *first)?);
                    let path = registers_of(&params.path_components);
                    if path.iter().any(|r| input.contains(r)) {
                        return None;
                    }
                    continue;
                }
            }
            Instruction::BuiltinCall { params_index } => {
                let params = program
                    .instruction_data
                    .builtin_call_params
                    .get(usize::from(params_index))?;
                let builtin = program
                    .builtin_info_table
                    .get(usize::from(params.builtin_index))?;
                if !PURE_BUILTINS.contains(&builtin.name.as_str()) {
                    return None;
                }
            }
            Instruction::HostAwait { .. }
            | Instruction::LoadContext { .. }
            | Instruction::LoadMetadata { .. } => return None,
            _ => {}
        }
        let reads = reads(program, &instruction, &implicit)?;
        if reads.iter().any(|r| input.contains(r)) {
            return None;
        }
    }
    Some(())
}

fn literal_string(program: &Program, index: u16) -> Option<String> {
    match program.literals.get(usize::from(index))? {
        Value::String(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Where an instruction may jump to, besides the next one.
fn jump_targets(program: &Program, instruction: &Instruction) -> Option<Vec<usize>> {
    let data = &program.instruction_data;
    let targets: Vec<u16> = match *instruction {
        Instruction::LoopStart { params_index } => {
            let p = data.loop_params.get(usize::from(params_index))?;
            vec![p.body_start, p.loop_end]
        }
        Instruction::LoopNext {
            body_start,
            loop_end,
        } => vec![body_start, loop_end],
        Instruction::ComprehensionBegin { params_index } => {
            let p = data
                .comprehension_begin_params
                .get(usize::from(params_index))?;
            vec![p.body_start, p.comprehension_end]
        }
        Instruction::LogicalBlockStart { end_pc, .. }
        | Instruction::AllOfNext { end_pc, .. }
        | Instruction::AnyOfNext { end_pc, .. } => vec![end_pc],
        _ => Vec::new(),
    };
    Some(targets.into_iter().map(usize::from).collect())
}

/// Registers loops and comprehensions read without naming them in each instruction.
fn loop_registers(program: &Program, instruction: &Instruction) -> Option<Vec<u8>> {
    let data = &program.instruction_data;
    Some(match *instruction {
        Instruction::LoopStart { params_index } => {
            let p = data.loop_params.get(usize::from(params_index))?;
            vec![p.collection, p.key_reg, p.value_reg, p.result_reg]
        }
        Instruction::ComprehensionBegin { params_index } => {
            let p = data
                .comprehension_begin_params
                .get(usize::from(params_index))?;
            vec![p.collection_reg, p.result_reg, p.key_reg, p.value_reg]
        }
        _ => Vec::new(),
    })
}

/// Every register an instruction may read. `implicit`: what the frame's loop ends, comprehension
/// ends and returns read without naming (loop and comprehension registers, the rule's result).
fn reads(program: &Program, instruction: &Instruction, implicit: &[u8]) -> Option<Vec<u8>> {
    use Instruction as I;
    let data = &program.instruction_data;
    let index = usize::from;
    Some(match *instruction {
        I::Load { .. }
        | I::LoadTrue { .. }
        | I::LoadFalse { .. }
        | I::LoadNull { .. }
        | I::LoadBool { .. }
        | I::LoadData { .. }
        | I::LoadInput { .. }
        | I::LoadContext { .. }
        | I::LoadMetadata { .. }
        | I::ArrayNew { .. }
        | I::SetNew { .. }
        | I::CallRule { .. }
        | I::RuleInit { .. } => Vec::new(),
        I::Move { src, .. } => vec![src],
        I::Add { left, right, .. }
        | I::Sub { left, right, .. }
        | I::Mul { left, right, .. }
        | I::Div { left, right, .. }
        | I::Mod { left, right, .. }
        | I::Eq { left, right, .. }
        | I::Ne { left, right, .. }
        | I::Lt { left, right, .. }
        | I::Le { left, right, .. }
        | I::Gt { left, right, .. }
        | I::Ge { left, right, .. }
        | I::And { left, right, .. }
        | I::Or { left, right, .. }
        | I::AssertEq { left, right }
        | I::PolicyCondition { left, right, .. } => vec![left, right],
        I::Not { operand, .. } => vec![operand],
        I::BuiltinCall { params_index } => data
            .builtin_call_params
            .get(index(params_index))?
            .arg_registers()
            .to_vec(),
        I::FunctionCall { params_index } => data
            .function_call_params
            .get(index(params_index))?
            .arg_registers()
            .to_vec(),
        I::HostAwait { arg, id, .. } => vec![arg, id],
        I::ObjectSet { obj, key, value } => vec![obj, key, value],
        I::ObjectCreate { params_index } => {
            let p = data.object_create_params.get(index(params_index))?;
            let literal = p.literal_key_fields.iter().map(|&(_, v)| v);
            let fields = p.fields.iter().flat_map(|&(k, v)| [k, v]);
            literal.chain(fields).collect()
        }
        I::Index { container, key, .. } => vec![container, key],
        I::IndexLiteral { container, .. } => vec![container],
        I::ChainedIndex { params_index } => {
            let p = data.chained_index_params.get(index(params_index))?;
            let mut regs = registers_of(&p.path_components);
            regs.push(p.root);
            regs
        }
        I::ArrayPush { arr, value } | I::ArrayPushDefined { arr, value } => vec![arr, value],
        I::ArrayCreate { params_index } => data
            .array_create_params
            .get(index(params_index))?
            .elements
            .clone(),
        I::SetAdd { set, value } => vec![set, value],
        I::SetCreate { params_index } => data
            .set_create_params
            .get(index(params_index))?
            .elements
            .clone(),
        I::Contains {
            collection, value, ..
        } => vec![collection, value],
        I::Count { collection, .. } => vec![collection],
        I::Guard { register, .. } | I::CoalesceUndefinedToNull { register } => vec![register],
        I::ReturnUndefinedIfNotTrue { condition } => vec![condition],
        I::VirtualDataDocumentLookup { params_index } => registers_of(
            &data
                .virtual_data_document_lookup_params
                .get(index(params_index))?
                .path_components,
        ),
        I::ComprehensionYield { value_reg, key_reg } => {
            let mut regs = vec![value_reg];
            regs.extend(key_reg);
            regs
        }
        I::LogicalBlockStart { result, .. } | I::LogicalBlockEnd { result, .. } => vec![result],
        I::AllOfNext { check, result, .. } | I::AnyOfNext { check, result, .. } => {
            vec![check, result]
        }
        I::Return { value } => {
            let mut regs = implicit.to_vec();
            regs.push(value);
            regs
        }
        I::Halt {} => {
            let mut regs = implicit.to_vec();
            regs.push(0);
            regs
        }
        I::LoopStart { .. }
        | I::LoopNext { .. }
        | I::ComprehensionBegin { .. }
        | I::ComprehensionEnd {}
        | I::RuleReturn {}
        | I::DestructuringSuccess {} => implicit.to_vec(),
    })
}

fn registers_of(components: &[LiteralOrRegister]) -> Vec<u8> {
    components
        .iter()
        .filter_map(|c| match *c {
            LiteralOrRegister::Register(r) => Some(r),
            LiteralOrRegister::Literal(_) => None,
        })
        .collect()
}
