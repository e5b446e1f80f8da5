//! The one module that knows the `cel` crate.
//!
//! cel breaks its API every few months, so everything the policy engine needs from it goes
//! through four types: [`Engine`] (the standard library, set up once per policy),
//! [`Condition`] (one compiled rule condition), [`Activation`] (one event bound as `event`,
//! against which conditions are evaluated) and the evaluation [`Budget`].
//!
//! **Metering.** cel 0.15 has neither an iteration limit nor a deadline. Without loops a
//! condition does work bounded by its own size (conditions are size-limited at load), so
//! only comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) can run long. At
//! compile time the range of every comprehension is wrapped in a call to a metering
//! function that charges the range's size against the evaluation's iteration budget and
//! checks its deadline before the loop runs. An inner loop is charged each time it starts,
//! so the total charged bounds the iterations run. Conditions without comprehensions (all
//! of the built-in policy's) are not metered and pay nothing.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bosun_core::xid::{Xid, XidCatalog};
use bosun_core::{HealthEvent, RemediationAction};
use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr};
use cel::common::types::{CelBool, CelDouble, CelInt, CelMap, CelMapKey, CelString, DYN_TYPE, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{Context, Env, ExecutionError, ParseErrors, Value};

use crate::metric::MetricValue;

/// The one variable conditions see.
const EVENT_VARIABLE: &str = "event";
/// The metering function wrapped around comprehension ranges.
const METER_FUNCTION: &str = "__bosun_meter";
/// The variable holding the evaluation's meter. CEL source cannot name identifiers that
/// start with `@`, so no condition can read or replace it.
const METER_VARIABLE: &str = "@bosun_meter";

/// How much work one evaluation of one condition may do before it is abandoned and
/// reported as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Comprehension iterations, all loops of the condition together.
    pub max_iterations: u64,
    /// Wall-clock time, checked each time a loop starts.
    pub max_duration: Duration,
}

impl Default for Budget {
    /// Generous for any health predicate (the built-in policy needs no loops at all) and
    /// small enough that one bad rule cannot stall a report: 10,000 iterations, 10 ms.
    fn default() -> Self {
        Self { max_iterations: 10_000, max_duration: Duration::from_millis(10) }
    }
}

/// The CEL standard library plus the metering function.
///
/// Building it registers every standard function (tens of microseconds), so a policy
/// builds one when it is compiled and every evaluation opens a cheap child scope on it.
pub(crate) struct Engine {
    env: Arc<Env>,
    root: Context<'static, 'static>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    pub(crate) fn new() -> Result<Self, String> {
        let mut env = Env::stdlib();
        env.add_overload(METER_FUNCTION, "bosun_meter_dyn_dyn", vec![DYN_TYPE, DYN_TYPE], meter_range)
            .map_err(|error| error.to_string())?;
        let env = Arc::new(env);
        Ok(Self { root: Context::with_env(Arc::clone(&env)), env })
    }

    /// Compiles a condition, or explains in one line why it does not compile.
    ///
    /// Run it on a thread with a [`COMPILE_STACK`]-sized stack: cel's parser recurses once
    /// per operator of a chain such as `1 + 1 + ... + 1`.
    pub(crate) fn compile(&self, source: &str) -> Result<Condition, String> {
        let mut expression = self.env.parser().parse(source).map_err(|errors| describe_parse_errors(&errors))?;
        let depth = depth(&expression);
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(format!(
                "the expression nests {depth} levels deep; the limit is {MAX_EXPRESSION_DEPTH} (split it into simpler \
                 conditions or rules)"
            ));
        }
        let metered = meter_comprehensions(&mut expression);
        Ok(Condition { expression, metered })
    }

    /// Binds `event` for the evaluation of any number of conditions. An XID event with a
    /// readable code also carries its `catalog` entry as `event.xid`.
    pub(crate) fn activate<'a>(&'a self, event: &'a HealthEvent, catalog: &'a XidCatalog) -> Activation<'a> {
        let mut scope = self.root.new_inner_scope();
        scope.add_variable_as_val(EVENT_VARIABLE, Box::new(event_value(event, catalog)));
        Activation { scope }
    }
}

impl Engine {
    /// Binds an operation's fields as top-level variables (`tool`, `risk`, `actor`, `role`,
    /// `targets`, `pool`, `pool_fraction`, `kind`) for approval policy conditions.
    pub(crate) fn activate_operation<'a>(&'a self, op: &'a crate::approval::Operation) -> Activation<'a> {
        let mut scope = self.root.new_inner_scope();
        let strings: [(&str, &str); 6] = [
            ("tool", op.tool.as_str()),
            ("risk", op.risk.as_str()),
            ("actor", op.actor.as_str()),
            ("role", op.role.as_str()),
            ("pool", op.pool.as_deref().unwrap_or("")),
            ("kind", op.kind.as_str()),
        ];
        for (name, value) in strings {
            scope.add_variable_as_val(name, Box::new(CelString::from(value)));
        }
        scope.add_variable_as_val("targets", Box::new(CelInt::from(i64::from(op.targets))));
        scope.add_variable_as_val("pool_fraction", Box::new(CelDouble::from(op.pool_fraction)));
        Activation { scope }
    }
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) struct Condition {
    expression: IdedExpr,
    /// Whether the condition has loops, and so a meter to bind when it runs.
    metered: bool,
}

/// One event, converted to CEL once and shared by every condition evaluated against it.
pub(crate) struct Activation<'a> {
    scope: Context<'a, 'a>,
}

impl Activation<'_> {
    /// Evaluates `condition`: `Ok` with its boolean value, or `Err` with why it has none (an
    /// evaluation error, a result that is not a bool, or an exhausted budget).
    pub(crate) fn evaluate(&mut self, condition: &Condition, budget: Budget) -> Result<bool, String> {
        let meter = condition.metered.then(|| Meter::start(budget));
        if let Some(meter) = &meter {
            self.scope.add_variable_as_val(METER_VARIABLE, Box::new(meter.clone()));
        }
        let outcome = Value::resolve_val(&condition.expression, &self.scope);
        // An exhausted budget wins over any result: `exists` and `||` can swallow the
        // error the meter raised, but the work was still abandoned.
        if let Some(overrun) = meter.and_then(|meter| meter.overrun()) {
            return Err(overrun);
        }
        let value = outcome.map_err(|error| one_line(&error.to_string()))?;
        match value.downcast_ref::<CelBool>() {
            Some(boolean) => Ok(*boolean.inner()),
            None => Err(format!("condition returned {}, not bool", value.get_type().name())),
        }
    }
}

/// Error messages end up in table cells and log lines; some of cel's span several lines
/// (a regex error draws the pattern with a caret).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `event` as conditions see it: a map whose strings borrow from the event.
///
/// `event.xid` (XID events with a readable `xid_code` only): `code` (int), `name`,
/// `action` (`none`, `restart_app`, `reset_gpu`, `reboot`, `replace`), `hardware` (bool)
/// and `known` (whether the catalog has the code; unknown codes ask for `none`).
fn event_value<'a>(event: &'a HealthEvent, catalog: &'a XidCatalog) -> CelMap<'a> {
    let metrics: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> =
        event.metrics.iter().map(|(key, text)| (key_of(key), metric_value(text))).collect();
    let mut map = event_fields(event, metrics);
    if let Some(code) = event.xid_code() {
        map.insert(key_of("xid"), Box::new(xid_value(code, catalog.get(code))));
    }
    CelMap::from(map)
}

fn xid_value(code: u32, entry: Option<&Xid>) -> CelMap<'_> {
    let (name, action, hardware) = match entry {
        Some(xid) => (xid.name.as_str(), xid.action, xid.hardware),
        None => ("unknown XID", RemediationAction::None, false),
    };
    let fields: [(&'static str, Box<dyn Val + '_>); 5] = [
        ("code", Box::new(CelInt::from(i64::from(code)))),
        ("name", Box::new(CelString::from(name))),
        ("action", Box::new(CelString::from(action.as_str()))),
        ("hardware", Box::new(CelBool::from(hardware))),
        ("known", Box::new(CelBool::from(entry.is_some()))),
    ];
    CelMap::from(fields.into_iter().map(|(key, value)| (key_of(key), value)).collect::<HashMap<_, _>>())
}

fn event_fields<'a>(
    event: &'a HealthEvent,
    metrics: HashMap<CelMapKey<'a>, Box<dyn Val + 'a>>,
) -> HashMap<CelMapKey<'a>, Box<dyn Val + 'a>> {
    let fields: [(&'static str, Box<dyn Val + '_>); 7] = [
        ("event_type", Box::new(CelString::from(event.event_type.as_str()))),
        ("system", Box::new(CelString::from(event.system.as_str()))),
        ("gpu_index", Box::new(CelInt::from(i64::from(event.gpu_index)))),
        ("gpu_uuid", Box::new(CelString::from(event.gpu_uuid.as_str()))),
        ("message", Box::new(CelString::from(event.message.as_str()))),
        ("timestamp", Box::new(CelString::from(event.timestamp.to_rfc3339()))),
        ("metrics", Box::new(CelMap::from(metrics))),
    ];
    fields.into_iter().map(|(key, value)| (key_of(key), value)).collect()
}

fn key_of(key: &str) -> CelMapKey<'_> {
    CelMapKey::String(CelString::from(key))
}

fn metric_value(text: &str) -> Box<dyn Val + '_> {
    match MetricValue::parse(text) {
        MetricValue::Int(value) => Box::new(CelInt::from(value)),
        MetricValue::Double(value) => Box::new(CelDouble::from(value)),
        MetricValue::Bool(value) => Box::new(CelBool::from(value)),
        MetricValue::Text(text) => Box::new(CelString::from(text)),
    }
}

/// `line 1, column 11: Syntax error: ...`, one line per error joined with `; ` (cel's own
/// rendering spans several lines with a caret under the source).
fn describe_parse_errors(errors: &ParseErrors) -> String {
    let lines: Vec<String> = errors
        .errors
        .iter()
        .map(|error| format!("line {}, column {}: {}", error.pos.0, error.pos.1, error.msg))
        .collect();
    lines.join("; ")
}

/// The deepest a compiled condition may nest. cel's evaluator recurses once per level
/// (each costing kilobytes of stack in a debug build), and conditions are evaluated on the
/// server's async workers: a chain of 100 additions overflowed a 1 MiB stack. Real health
/// predicates nest a handful of levels (`&&` and `||` chains are balanced by the parser).
pub const MAX_EXPRESSION_DEPTH: usize = 32;

/// Stack of the thread conditions are compiled on: cel's parser needs about 4 KiB per
/// operator of a chain, and a condition of `MAX_CONDITION_LEN` bytes holds thousands.
pub(crate) const COMPILE_STACK: usize = 64 * 1024 * 1024;

/// How deeply `expression` nests, counted without recursion (the tree may be far deeper
/// than the limit it is checked against).
fn depth(expression: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(expression, 1)];
    while let Some((expression, level)) = pending.pop() {
        deepest = deepest.max(level);
        pending.extend(children(expression).into_iter().map(|child| (child, level + 1)));
    }
    deepest
}

fn entry_values(entry: &EntryExpr) -> Vec<&IdedExpr> {
    match entry {
        EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
        EntryExpr::StructField(field) => vec![&field.value],
    }
}

fn children(expression: &IdedExpr) -> Vec<&IdedExpr> {
    match &expression.expr {
        Expr::Call(call) => call.target.iter().map(|t| &**t).chain(call.args.iter()).collect(),
        Expr::Comprehension(comprehension) => {
            let loop_ = &**comprehension;
            vec![&loop_.iter_range, &loop_.accu_init, &loop_.loop_cond, &loop_.loop_step, &loop_.result]
        }
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map.entries.iter().flat_map(|e| entry_values(&e.expr)).collect(),
        Expr::Struct(object) => object.entries.iter().flat_map(|e| entry_values(&e.expr)).collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

/// Wraps the range of every comprehension in `expression` in a call to the metering
/// function. Returns whether there was any.
fn meter_comprehensions(expression: &mut IdedExpr) -> bool {
    match &mut expression.expr {
        Expr::Comprehension(comprehension) => {
            let loop_ = &mut **comprehension;
            meter_all([
                &mut loop_.iter_range,
                &mut loop_.accu_init,
                &mut loop_.loop_cond,
                &mut loop_.loop_step,
                &mut loop_.result,
            ]);
            let range = std::mem::take(&mut loop_.iter_range);
            let id = range.id;
            let meter = IdedExpr { id, expr: Expr::Ident(METER_VARIABLE.to_owned()) };
            let call = CallExpr { func_name: METER_FUNCTION.to_owned(), target: None, args: vec![range, meter] };
            loop_.iter_range = IdedExpr { id, expr: Expr::Call(call) };
            true
        }
        Expr::Call(call) => meter_all(call.target.as_deref_mut().into_iter().chain(call.args.iter_mut())),
        Expr::List(list) => meter_all(list.elements.iter_mut()),
        Expr::Map(map) => meter_all(map.entries.iter_mut().flat_map(|entry| entry_children(&mut entry.expr))),
        Expr::Struct(object) => meter_all(object.entries.iter_mut().flat_map(|entry| entry_children(&mut entry.expr))),
        Expr::Select(select) => meter_comprehensions(&mut select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => false,
    }
}

/// Meters every one of `expressions` (no short-circuit); whether any had a loop.
fn meter_all<'e>(expressions: impl IntoIterator<Item = &'e mut IdedExpr>) -> bool {
    expressions.into_iter().fold(false, |metered, expression| meter_comprehensions(expression) | metered)
}

fn entry_children(entry: &mut EntryExpr) -> Vec<&mut IdedExpr> {
    match entry {
        EntryExpr::MapEntry(entry) => vec![&mut entry.key, &mut entry.value],
        EntryExpr::StructField(field) => vec![&mut field.value],
    }
}

/// The metering function: `__bosun_meter(range, meter)` charges `size(range)` iterations
/// to `meter` and returns `range` unchanged.
fn meter_range<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let count = args.len();
    let [range, meter]: [CowVal<'b, 'v>; 2] =
        args.try_into().map_err(|_| ExecutionError::invalid_argument_count(2, count))?;
    let meter = meter
        .downcast_ref::<Meter>()
        .ok_or_else(|| ExecutionError::function_error(METER_FUNCTION, "the second argument is not a meter"))?;
    let iterations = range.as_sizer().map_or(1, |sizer| u64::try_from(*sizer.size().inner()).unwrap_or(0));
    if meter.charge(iterations) {
        Ok(range)
    } else {
        // The message is never shown: `Activation::evaluate` reports the meter's overrun.
        Err(ExecutionError::function_error(METER_FUNCTION, "evaluation budget exhausted"))
    }
}

/// The work one evaluation has done so far. Clones share the count, so the handle kept by
/// [`Activation::evaluate`] sees what the copy bound in the context was charged.
#[derive(Debug, Clone)]
struct Meter(Arc<MeterState>);

/// Atomics only because CEL values must be `Sync`: a meter never leaves its thread.
#[derive(Debug)]
struct MeterState {
    budget: Budget,
    started: Instant,
    iterations: AtomicU64,
    timed_out: AtomicBool,
}

impl Meter {
    fn start(budget: Budget) -> Self {
        Self(Arc::new(MeterState {
            budget,
            started: Instant::now(),
            iterations: AtomicU64::new(0),
            timed_out: AtomicBool::new(false),
        }))
    }

    /// Charges `iterations`; false once the budget is exhausted, in iterations or time.
    fn charge(&self, iterations: u64) -> bool {
        let state = &self.0;
        let total = state.iterations.fetch_add(iterations, Ordering::Relaxed).saturating_add(iterations);
        if total > state.budget.max_iterations {
            return false;
        }
        if state.started.elapsed() >= state.budget.max_duration {
            state.timed_out.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Why the budget was exceeded, if it was.
    fn overrun(&self) -> Option<String> {
        let state = &self.0;
        let budget = state.budget;
        if state.iterations.load(Ordering::Relaxed) > budget.max_iterations {
            Some(format!("exceeded the evaluation budget of {} loop iterations", budget.max_iterations))
        } else if state.timed_out.load(Ordering::Relaxed) {
            Some(format!("exceeded the evaluation time budget of {:?}", budget.max_duration))
        } else {
            None
        }
    }
}

impl Val for Meter {
    fn get_type(&self) -> &Type {
        &DYN_TYPE
    }

    fn cel_type() -> &'static Type {
        &DYN_TYPE
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for Meter {}
