//! Stopping and starting a service by address. The engine records the wish and its
//! reconciler acts on it (see `clank_engine`'s `stop_service`): a stopped service keeps its
//! deployments, history and volumes, answers on no domain, stays stopped across restarts and
//! refuses new deployments until it is started again.

use clank_core::Result;
use clank_core::address::ServiceAddress;
use clank_core::model::Service;

use crate::Platform;

impl Platform {
    /// Stop the service: its route is removed, then its workloads (in the background, within
    /// moments). Refused while one of its deployments is in progress; a no-op when stopped.
    pub async fn stop_service(&self, addr: &ServiceAddress) -> Result<Service> {
        let service = self.service(addr).await?;
        self.engine.stop_service(service.id).await
    }

    /// Start a stopped service: its ACTIVE deployment's workloads are started again and the
    /// route comes back once they pass their health checks. A no-op when running.
    pub async fn start_service(&self, addr: &ServiceAddress) -> Result<Service> {
        let service = self.service(addr).await?;
        self.engine.start_service(service.id).await
    }
}
