//! The hooks of a filter configuration: made and destroyed on the main thread, woken there, and
//! answered there when it made a callout.
#![allow(unsafe_code)]

use std::sync::Arc;

use super::{ConfigSlot, NEW_CONFIG, callout_answer, config_of, destroy, report_panic};
use crate::abi::{self, ConfigEnvoyPtr, ConfigModulePtr};
use crate::barrier;
use crate::config::{ConfigHandle, ConfigInit};
use crate::http::CalloutId;
use crate::log::{self, Level};
use crate::scheduler::Waker;

/// # Safety
/// Called by Envoy on the main thread with a live configuration and buffers valid for the call.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: ConfigEnvoyPtr,
    name: abi::EnvoyBuffer,
    config: abi::EnvoyBuffer,
) -> ConfigModulePtr {
    // SAFETY: Envoy's buffers are valid for the duration of this hook.
    let (name, config) = unsafe {
        (
            abi::bytes(name.ptr, name.length),
            abi::bytes(config.ptr, config.length),
        )
    };
    let name = String::from_utf8_lossy(name);
    let mut waker = None;
    let made = barrier::catch(|| {
        let new_config = NEW_CONFIG
            .get()
            .ok_or("the module registered no configuration constructor")?;
        let mut init = ConfigInit {
            envoy,
            waker: &mut waker,
        };
        new_config(&mut init, &name, config)
    });
    match made {
        Ok(Ok(config)) => {
            let slot = Box::new(ConfigSlot {
                config: Arc::from(config),
                waker,
            });
            Box::into_raw(slot).cast_const().cast()
        }
        Ok(Err(err)) => {
            log::log(
                Level::Error,
                &format!("filter configuration {name} rejected: {err}"),
            );
            waker.inspect(Waker::close);
            std::ptr::null()
        }
        Err(panic) => {
            report_panic("filter configuration", &panic);
            waker.inspect(Waker::close);
            std::ptr::null()
        }
    }
}

/// # Safety
/// `module` is null or came from `envoy_dynamic_module_on_http_filter_config_new`, destroyed once.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(module: ConfigModulePtr) {
    // SAFETY: made by `Box::into_raw` in `config_new`; Envoy destroys each configuration once.
    unsafe {
        destroy::<ConfigSlot>(module, "dropping a filter configuration", |slot| {
            slot.waker.clone()
        });
    }
}

/// # Safety
/// Called by Envoy on the main thread with the configuration's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    envoy: ConfigEnvoyPtr,
    module: ConfigModulePtr,
    event: u64,
) {
    // SAFETY: Envoy passes this configuration's own pointer.
    let Some(slot) = (unsafe { config_of(module) }) else {
        return;
    };
    let handle = ConfigHandle { envoy };
    if let Err(panic) = barrier::catch(|| slot.config.on_scheduled(&handle, event)) {
        report_panic("configuration on_scheduled", &panic);
    }
}

/// # Safety
/// Called by Envoy on the main thread; headers and chunks are valid for the call.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    envoy: ConfigEnvoyPtr,
    module: ConfigModulePtr,
    callout_id: u64,
    result: abi::CalloutResult,
    headers: *mut abi::EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *mut abi::EnvoyBuffer,
    body_chunks_size: usize,
) {
    // SAFETY: Envoy passes this configuration's own pointer.
    let Some(slot) = (unsafe { config_of(module) }) else {
        return;
    };
    let handle = ConfigHandle { envoy };
    let outcome = barrier::catch(|| {
        // SAFETY: Envoy's arrays are valid for the duration of this hook.
        let answer =
            unsafe { callout_answer(result, headers, headers_size, body_chunks, body_chunks_size) };
        slot.config
            .on_callout_done(&handle, CalloutId(callout_id), answer);
    });
    if let Err(panic) = outcome {
        report_panic("configuration on_callout_done", &panic);
    }
}
