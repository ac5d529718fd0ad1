//! Interactive exec: a command on a terminal (TTY) in a running container, for `clank exec
//! -it`. Docker allocates the terminal; its output arrives raw (a terminal merges stdout and
//! stderr), keystrokes go to the exec's attached stdin, and a resize is the engine's
//! `exec/{id}/resize`.

use std::time::Duration;

use bollard::Docker;
use bollard::exec::{ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use clank_core::runtime::{TerminalInput, TerminalSession, TerminalSink, TerminalSize, WorkloadId};
use clank_core::{Error, Result, RuntimeFailure};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::DockerRuntime;
use crate::error::{Subject, engine_error};

/// Keystrokes and resizes of one exec.
struct ExecInput {
    docker: Docker,
    exec: String,
    program: String,
    stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

#[async_trait::async_trait]
impl TerminalSink for ExecInput {
    async fn send(&mut self, input: TerminalInput) -> Result<()> {
        match input {
            TerminalInput::Data(bytes) => {
                let written = async {
                    self.stdin.write_all(&bytes).await?;
                    self.stdin.flush().await
                };
                written.await.map_err(|e| {
                    Error::runtime(
                        RuntimeFailure::Other,
                        format!("`{}` no longer reads its terminal: {e}", self.program),
                    )
                })
            }
            TerminalInput::Resize(size) => {
                let size = size.check()?;
                let options = ResizeExecOptions {
                    height: size.rows,
                    width: size.cols,
                };
                self.docker
                    .resize_exec(&self.exec, options)
                    .await
                    .map_err(|e| engine_error(e, Subject::Exec, &self.program))
            }
        }
    }
}

impl DockerRuntime {
    pub(crate) async fn exec_terminal(
        &self,
        id: &WorkloadId,
        command: &[String],
        size: TerminalSize,
    ) -> Result<TerminalSession> {
        let size = size.check()?;
        self.ready_for_exec(id, command).await?;
        let program = command[0].clone();
        let config = ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(true),
            console_size: Some(vec![usize::from(size.rows), usize::from(size.cols)]),
            env: Some(vec!["TERM=xterm-256color".into()]),
            cmd: Some(command.to_vec()),
            ..ExecConfig::default()
        };
        let created = self
            .docker
            .create_exec(&id.0, config)
            .await
            .map_err(|e| engine_error(e, Subject::Container, &id.0))?;
        let options = StartExecOptions {
            detach: false,
            tty: true,
            output_capacity: None,
        };
        let started = self
            .docker
            .start_exec(&created.id, Some(options))
            .await
            .map_err(|e| engine_error(e, Subject::Exec, &program))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(Error::runtime(
                RuntimeFailure::Other,
                format!("the engine started `{program}` detached; no terminal to attach to"),
            ));
        };
        // Older engines (API < 1.42) ignore `console_size`: size the terminal once it exists.
        let resized = self
            .docker
            .resize_exec(
                &created.id,
                ResizeExecOptions {
                    height: size.rows,
                    width: size.cols,
                },
            )
            .await;
        if let Err(e) = resized {
            tracing::debug!(error = %e, "Sizing a new exec terminal failed; it keeps the engine's size.");
        }
        let output = output.map({
            let program = program.clone();
            move |frame| match frame {
                Ok(frame) => Ok(frame.into_bytes().to_vec()),
                Err(e) => Err(engine_error(e, Subject::Exec, &program)),
            }
        });
        let exit_code = {
            let (docker, exec, program) =
                (self.docker.clone(), created.id.clone(), program.clone());
            async move {
                // Asked once the output has ended; the engine may record the code a moment
                // after the process is gone.
                for _ in 0..50 {
                    let i = docker
                        .inspect_exec(&exec)
                        .await
                        .map_err(|e| engine_error(e, Subject::Exec, &program))?;
                    if i.running != Some(true) {
                        return Ok(i.exit_code);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None)
            }
        };
        Ok(TerminalSession {
            output: Box::pin(output),
            input: Box::new(ExecInput {
                docker: self.docker.clone(),
                exec: created.id,
                program,
                stdin: input,
            }),
            exit_code: Box::pin(exit_code),
        })
    }
}
